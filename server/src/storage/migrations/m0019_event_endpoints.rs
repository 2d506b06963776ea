//! Outbound events (issue 19): endpoints that receive signed Standard Webhooks, the outbox of
//! events written in the transaction of what caused them, each event's delivery to each
//! subscribed endpoint, and the log of every attempt.
//!
//! - `event_endpoints`: an organization's receivers: URL, subscribed types (`[]`: all), a filter
//!   on the call, whether the transcript is included, a rate limit, counters, and whether it is
//!   enabled (with the reason when not, and since when it has been failing). Its signing secrets
//!   (`whsec_`, the current first, replaced ones until their grace ends) and its static headers
//!   are sealed by the master key, as JSON of sealed values (`secrets_json`, `headers_json`).
//! - `events`: what happened, as the exact envelope `{type, timestamp, data}`; its id is the
//!   `webhook-id` every attempt carries.
//! - `event_deliveries`: one per event and endpoint: `pending` (due at `next_attempt_at_ms`,
//!   which a sender moves forward by its lease when it takes it, so a sender that dies leaves
//!   it due again), `delivered` or `failed` (the schedule ran out, or the endpoint went). Due
//!   ones are taken by a partial index in due order; an endpoint's and an event's by key.
//! - `event_attempts`: every attempt: HTTP status, latency, a response excerpt, the error.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

/// Stored in the migrations table: never rename.
impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0019_event_endpoints"
    }
}

const UP: &str = "
CREATE TABLE event_endpoints (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    event_types_json TEXT NOT NULL,
    filter_json TEXT NOT NULL,
    include_transcript BOOLEAN NOT NULL,
    rate_limit_per_second INTEGER NULL,
    secrets_json TEXT NOT NULL,
    headers_json TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT NOT NULL,
    failing_since_ms BIGINT NULL,
    sent BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    last_success_at_ms BIGINT NULL,
    last_failure_at_ms BIGINT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX event_endpoints_by_organization ON event_endpoints (organization_id, id);
CREATE TABLE events (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX events_by_organization ON events (organization_id, id);
CREATE TABLE event_deliveries (
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    last_status INTEGER NULL,
    last_error TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at_ms)
    WHERE state = 'pending';
CREATE INDEX event_deliveries_by_endpoint ON event_deliveries (endpoint_id, event_id);
CREATE TABLE event_attempts (
    id TEXT NOT NULL PRIMARY KEY,
    organization_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    attempted_at_ms BIGINT NOT NULL,
    http_status INTEGER NULL,
    latency_ms BIGINT NOT NULL,
    response_excerpt TEXT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX event_attempts_by_endpoint ON event_attempts (endpoint_id, id);
CREATE INDEX event_attempts_by_event ON event_attempts (event_id, id);
";

const DOWN: &str = "
DROP TABLE event_attempts;
DROP TABLE event_deliveries;
DROP TABLE events;
DROP TABLE event_endpoints;
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
