//! What other processes of one PostgreSQL database must hear of at once, through `NOTIFY`:
//! - an integration disabled, rotated, updated or deleted on one replica is dropped from every
//!   replica's webhook cache, not after the cache's TTL;
//! - jobs queued by one replica wake the workers of every replica, not at their next poll;
//! - a process that starts or stops serving the API makes the others count again how many
//!   serve it (`instances`, with heartbeats), which divides each integration's rate limit.
//!
//! On SQLite one process owns the file, and nothing is sent.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Storage, db_error};
use crate::error::Error;

/// The channel integration changes are announced on; the payload is the integration's public id.
const INTEGRATIONS_CHANNEL: &str = "earshot_integrations";
/// The channel new jobs are announced on (no payload).
const JOBS_CHANNEL: &str = "earshot_jobs";
/// The channel a process starting or stopping is announced on (no payload).
const INSTANCES_CHANNEL: &str = "earshot_instances";

/// What another process announced.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The integration with this public id changed.
    Integration(String),
    /// Jobs were queued.
    Jobs,
    /// A process started or stopped.
    Instances,
    /// The connection that listens was lost and made again: announcements sent meanwhile are
    /// lost, so anything cached may be stale and jobs may be waiting.
    Unknown,
}

/// A subscription to the announcements of other processes (PostgreSQL).
#[derive(Debug)]
pub struct Changes {
    listener: sea_orm::sqlx::postgres::PgListener,
}

impl Changes {
    /// The next announcement; `Err` when the database cannot be reached (the caller waits and
    /// asks again, which reconnects).
    pub async fn next(&mut self) -> Result<Change, Error> {
        match self.listener.try_recv().await {
            Ok(Some(notification)) if notification.channel() == JOBS_CHANNEL => Ok(Change::Jobs),
            Ok(Some(notification)) if notification.channel() == INSTANCES_CHANNEL => {
                Ok(Change::Instances)
            }
            Ok(Some(notification)) => Ok(Change::Integration(notification.payload().to_owned())),
            Ok(None) => Ok(Change::Unknown),
            Err(error) => Err(Error::Unavailable(format!("listening for changes: {error}"))),
        }
    }
}

/// Announces new jobs in the caller's transaction: sent when it commits, and only then.
pub(super) async fn announce_jobs(connection: &impl ConnectionTrait) -> Result<(), sea_orm::DbErr> {
    notify(connection, JOBS_CHANNEL, "").await
}

/// `NOTIFY channel, payload` on PostgreSQL (sent when the connection's transaction commits, at
/// once outside one); nothing on SQLite.
async fn notify(
    connection: &impl ConnectionTrait,
    channel: &str,
    payload: &str,
) -> Result<(), sea_orm::DbErr> {
    if connection.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), payload.into()],
    );
    connection.execute_raw(statement).await.map(|_| ())
}

/// The processes of a database that beat lately, by what they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveProcesses {
    /// Serving the API (role `all` or `api`): they divide integration and API-key budgets.
    pub api: u32,
    /// Sending outbound events (role `all` or `worker`): they divide endpoints' rate limits.
    pub senders: u32,
}

impl Storage {
    /// Tells the other processes of this database that the integration `public_id` changed.
    pub async fn announce_integration_change(&self, public_id: &str) -> Result<(), Error> {
        notify(&self.db, INTEGRATIONS_CHANNEL, public_id)
            .await
            .map_err(db_error("announcing an integration change"))
    }

    /// Records the heartbeat of this process (`id`, serving as `role`, started at `started`)
    /// and returns how many processes serving the API (role `all` or `api`) and how many
    /// sending events (role `all` or `worker`) have beaten since `live_since`, this one
    /// included where it counts. The first heartbeat announces the process; records silent for
    /// an hour are removed. On SQLite, whose file one process owns, nothing is written and
    /// the answer is one of each.
    pub async fn instance_heartbeat(
        &self,
        id: uuid::Uuid,
        role: &str,
        started: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
        live_since: chrono::DateTime<chrono::Utc>,
    ) -> Result<LiveProcesses, Error> {
        use crate::clock::to_millis;
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(LiveProcesses { api: 1, senders: 1 });
        }
        let context = "recording this process's heartbeat";
        let statement = |sql: &str, values: Vec<sea_orm::Value>| {
            Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
        };
        self.db
            .execute_raw(statement(
                "INSERT INTO instances (id, role, started_at_ms, heartbeat_at_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE \
                 SET heartbeat_at_ms = excluded.heartbeat_at_ms",
                vec![
                    id.to_string().into(),
                    role.into(),
                    to_millis(started).into(),
                    to_millis(now).into(),
                ],
            ))
            .await
            .map_err(db_error(context))?;
        self.db
            .execute_raw(statement(
                "DELETE FROM instances WHERE heartbeat_at_ms < $1",
                vec![to_millis(now - chrono::Duration::hours(1)).into()],
            ))
            .await
            .map_err(db_error(context))?;
        let row = self
            .db
            .query_one_raw(statement(
                "SELECT count(*) FILTER (WHERE role IN ('all', 'api')) AS api, \
                 count(*) FILTER (WHERE role IN ('all', 'worker')) AS senders \
                 FROM instances WHERE heartbeat_at_ms >= $1",
                vec![to_millis(live_since).into()],
            ))
            .await
            .map_err(db_error(context))?;
        let count = |column: &str| -> Result<u32, Error> {
            let live: i64 = match &row {
                Some(row) => row.try_get("", column).map_err(db_error(context))?,
                None => 0,
            };
            Ok(u32::try_from(live).unwrap_or(u32::MAX))
        };
        Ok(LiveProcesses { api: count("api")?, senders: count("senders")? })
    }

    /// Announces that a process started or stopped, so the others count again.
    pub async fn announce_instances(&self) -> Result<(), Error> {
        notify(&self.db, INSTANCES_CHANNEL, "").await.map_err(db_error("announcing a process"))
    }

    /// Removes this process's record (it is stopping) and announces it.
    pub async fn instance_left(&self, id: uuid::Uuid) -> Result<(), Error> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM instances WHERE id = $1",
            [id.to_string().into()],
        );
        self.db.execute_raw(statement).await.map_err(db_error("removing this process"))?;
        self.announce_instances().await
    }

    /// A subscription to what other processes announce; `None` on SQLite.
    pub async fn changes(&self) -> Result<Option<Changes>, Error> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let pool = self.db.get_postgres_connection_pool();
        let context = "listening for changes";
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(|error| Error::internal(context, error))?;
        listener
            .listen_all([INTEGRATIONS_CHANNEL, JOBS_CHANNEL, INSTANCES_CHANNEL])
            .await
            .map_err(|error| Error::internal(context, error))?;
        Ok(Some(Changes { listener }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use uuid::Uuid;

    use super::LiveProcesses;

    /// Processes are counted by role among those that beat since the cut-off: `all` serves the
    /// API and sends events, `api` only serves, `worker` only sends. On SQLite: one of each.
    #[tokio::test]
    async fn live_processes_are_counted_by_role() {
        let storage = super::super::testing::storage().await;
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let since = now - Duration::seconds(30);
        let beat = |role: &'static str, at| {
            let storage = storage.clone();
            async move { storage.instance_heartbeat(Uuid::now_v7(), role, at, at, since).await }
        };
        if storage.backend_name() != "postgres" {
            assert_eq!(beat("all", now).await.unwrap(), LiveProcesses { api: 1, senders: 1 });
            return;
        }
        beat("all", now).await.unwrap();
        beat("api", now).await.unwrap();
        beat("worker", now).await.unwrap();
        beat("worker", now - Duration::seconds(31)).await.unwrap();
        let live = beat("worker", now).await.unwrap();
        assert_eq!(live, LiveProcesses { api: 2, senders: 3 });
    }
}
