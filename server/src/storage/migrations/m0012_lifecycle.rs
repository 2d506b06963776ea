//! The data lifecycle: deletion on request, retention, and the recordings neither still needs.
//! - `deletions`: the audit log of every deletion (who, when, what filter, how much went), which
//!   keeps no deleted content;
//! - `orphan_blobs`: recordings no stored row names any more, each removed from the audio store
//!   once its grace period is over (`retention.audio_grace_seconds`) and no row names it again;
//! - `projects` gain how long their datapoints and their recordings are kept (NULL: forever);
//! - indexes that make a deletion cost what it deletes: a call's ingests by call id, the
//!   deliveries still holding a body by ingest, the datapoints naming a recording, the
//!   datapoints with a recording in time order (audio retention), and audio objects by content
//!   (a blob is shared by every project that stored the same bytes). The partial ones index only
//!   the rows they serve, so transcript-only calls do not pay for them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0012_lifecycle"
    }
}

const UP: &str = "
CREATE TABLE deletions (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id TEXT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    filter_json TEXT NOT NULL,
    requested_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT NULL,
    datapoints BIGINT NOT NULL,
    ingests BIGINT NOT NULL,
    delivery_bodies BIGINT NOT NULL,
    recordings BIGINT NOT NULL
);
CREATE INDEX deletions_by_organization ON deletions (organization_id, id);
CREATE TABLE orphan_blobs (
    blob_key TEXT NOT NULL PRIMARY KEY,
    sha256 TEXT NOT NULL,
    due_at_ms BIGINT NOT NULL
);
CREATE INDEX orphan_blobs_by_due ON orphan_blobs (due_at_ms);
ALTER TABLE projects ADD COLUMN datapoint_retention_days INTEGER NULL;
ALTER TABLE projects ADD COLUMN audio_retention_days INTEGER NULL;
CREATE INDEX ingests_by_call ON ingests (organization_id, call_id);
CREATE INDEX deliveries_with_body_by_ingest ON webhook_deliveries (ingest_id)
    WHERE body IS NOT NULL;
CREATE INDEX datapoints_by_audio ON datapoints (audio_id) WHERE audio_id IS NOT NULL;
CREATE INDEX datapoints_with_audio_by_time ON datapoints (project_id, occurred_at_ms)
    WHERE audio_id IS NOT NULL;
CREATE INDEX audio_objects_by_sha256 ON audio_objects (sha256);
";

const DOWN: &str = "
DROP INDEX audio_objects_by_sha256;
DROP INDEX datapoints_with_audio_by_time;
DROP INDEX datapoints_by_audio;
DROP INDEX deliveries_with_body_by_ingest;
DROP INDEX ingests_by_call;
ALTER TABLE projects DROP COLUMN audio_retention_days;
ALTER TABLE projects DROP COLUMN datapoint_retention_days;
DROP TABLE orphan_blobs;
DROP TABLE deletions;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await.map(|_| ())
    }
}
