//! What other processes of one PostgreSQL database must hear of at once, through `NOTIFY`:
//! - an integration disabled, rotated, updated or deleted on one replica is dropped from every
//!   replica's webhook cache, not after the cache's TTL;
//! - jobs queued by one replica wake the workers of every replica, not at their next poll.
//!
//! On SQLite one process owns the file, and nothing is sent.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Storage, db_error};
use crate::error::Error;

/// The channel integration changes are announced on; the payload is the integration's public id.
const INTEGRATIONS_CHANNEL: &str = "earshot_integrations";
/// The channel new jobs are announced on (no payload).
const JOBS_CHANNEL: &str = "earshot_jobs";

/// What another process announced.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The integration with this public id changed.
    Integration(String),
    /// Jobs were queued.
    Jobs,
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
            Ok(Some(notification)) => Ok(Change::Integration(notification.payload().to_owned())),
            Ok(None) => Ok(Change::Unknown),
            Err(error) => Err(Error::Unavailable(format!("listening for changes: {error}"))),
        }
    }
}

/// Announces new jobs in the caller's transaction: sent when it commits, and only then.
pub(super) async fn announce_jobs(connection: &impl ConnectionTrait) -> Result<(), sea_orm::DbErr> {
    if connection.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, '')",
        [JOBS_CHANNEL.into()],
    );
    connection.execute_raw(statement).await.map(|_| ())
}

impl Storage {
    /// Tells the other processes of this database that the integration `public_id` changed.
    pub async fn announce_integration_change(&self, public_id: &str) -> Result<(), Error> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [INTEGRATIONS_CHANNEL.into(), public_id.into()],
        );
        self.db
            .execute_raw(statement)
            .await
            .map_err(db_error("announcing an integration change"))?;
        Ok(())
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
            .listen_all([INTEGRATIONS_CHANNEL, JOBS_CHANNEL])
            .await
            .map_err(|error| Error::internal(context, error))?;
        Ok(Some(Changes { listener }))
    }
}
