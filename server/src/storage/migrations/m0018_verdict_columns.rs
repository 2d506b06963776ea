//! The provider's verdicts as searchable columns (issue 18): whether the call succeeded, its
//! sentiment and its outcome, copied from the datapoint's analysis (text lower-cased), each with
//! a partial index by organization, value and time: a search for failed or negative calls walks
//! only those, newest first, and calls without a verdict (most of an SDK's) cost no index entry.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0018_verdict_columns"
    }
}

const COLUMNS: &str = "
ALTER TABLE datapoints ADD COLUMN verdict_successful BOOLEAN;
ALTER TABLE datapoints ADD COLUMN verdict_sentiment TEXT;
ALTER TABLE datapoints ADD COLUMN verdict_outcome TEXT;
";

/// The verdicts of calls stored before, from their analysis JSON.
const FILL_SQLITE: &str = "
UPDATE datapoints SET
    verdict_successful = json_extract(analysis_json, '$.successful'),
    verdict_sentiment = lower(trim(json_extract(analysis_json, '$.sentiment'))),
    verdict_outcome = lower(trim(json_extract(analysis_json, '$.outcome')))
WHERE json_valid(analysis_json);
";

const FILL_POSTGRES: &str = "
UPDATE datapoints SET
    verdict_successful = (analysis_json::jsonb ->> 'successful')::boolean,
    verdict_sentiment = lower(trim(analysis_json::jsonb ->> 'sentiment')),
    verdict_outcome = lower(trim(analysis_json::jsonb ->> 'outcome'))
WHERE analysis_json LIKE '{%';
";

const INDEXES: &str = "
CREATE INDEX datapoints_by_verdict_successful
    ON datapoints (organization_id, verdict_successful, occurred_at_ms, id)
    WHERE verdict_successful IS NOT NULL;
CREATE INDEX datapoints_by_verdict_sentiment
    ON datapoints (organization_id, verdict_sentiment, occurred_at_ms, id)
    WHERE verdict_sentiment IS NOT NULL;
CREATE INDEX datapoints_by_verdict_outcome
    ON datapoints (organization_id, verdict_outcome, occurred_at_ms, id)
    WHERE verdict_outcome IS NOT NULL;
";

const DOWN: &str = "
DROP INDEX datapoints_by_verdict_outcome;
DROP INDEX datapoints_by_verdict_sentiment;
DROP INDEX datapoints_by_verdict_successful;
ALTER TABLE datapoints DROP COLUMN verdict_outcome;
ALTER TABLE datapoints DROP COLUMN verdict_sentiment;
ALTER TABLE datapoints DROP COLUMN verdict_successful;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection.execute_unprepared(COLUMNS).await?;
        let fill = match manager.get_database_backend() {
            DbBackend::Postgres => FILL_POSTGRES,
            _ => FILL_SQLITE,
        };
        connection.execute_unprepared(fill).await?;
        connection.execute_unprepared(INDEXES).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await.map(|_| ())
    }
}
