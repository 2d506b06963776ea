//! Alerts (issue 19): an event endpoint may be a Slack incoming webhook (`kind`), sent
//! readable messages instead of the event's JSON, and any endpoint may hold `check.failed`
//! back to one per monitor per `alert_cooldown_seconds` (0: every one). `alert_cooldowns`
//! keeps, per endpoint and monitor, when the last one was written.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0022_slack_alerts"
    }
}

const UP: &str = "
ALTER TABLE event_endpoints ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
ALTER TABLE event_endpoints ADD COLUMN alert_cooldown_seconds INTEGER NOT NULL DEFAULT 0;
CREATE TABLE alert_cooldowns (
    endpoint_id TEXT NOT NULL,
    monitor_id TEXT NOT NULL,
    sent_at_ms BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, monitor_id)
);
";

const DOWN: &str = "
DROP TABLE alert_cooldowns;
ALTER TABLE event_endpoints DROP COLUMN alert_cooldown_seconds;
ALTER TABLE event_endpoints DROP COLUMN kind;
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
