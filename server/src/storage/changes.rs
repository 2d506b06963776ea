//! Changes other processes of one PostgreSQL database must hear of at once: an integration
//! disabled, rotated, updated or deleted on one replica is dropped from every replica's webhook
//! cache through `NOTIFY`, not after the cache's TTL. On SQLite one process owns the file, and
//! nothing is sent.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Storage, db_error};
use crate::error::Error;

/// The channel integration changes are announced on; the payload is the integration's public id.
const INTEGRATIONS_CHANNEL: &str = "earshot_integrations";

/// What a replica should drop from its webhook cache.
#[derive(Debug, PartialEq, Eq)]
pub enum IntegrationChange {
    /// The integration with this public id changed.
    Changed(String),
    /// The connection that listens was lost and made again: announcements sent meanwhile are
    /// lost, so everything cached may be stale.
    Unknown,
}

/// A subscription to integration changes (PostgreSQL).
#[derive(Debug)]
pub struct IntegrationChanges {
    listener: sea_orm::sqlx::postgres::PgListener,
}

impl IntegrationChanges {
    /// The next change; `Err` when the database cannot be reached (the caller waits and asks
    /// again, which reconnects).
    pub async fn next(&mut self) -> Result<IntegrationChange, Error> {
        match self.listener.try_recv().await {
            Ok(Some(notification)) => {
                Ok(IntegrationChange::Changed(notification.payload().to_owned()))
            }
            Ok(None) => Ok(IntegrationChange::Unknown),
            Err(error) => {
                Err(Error::Unavailable(format!("listening for integration changes: {error}")))
            }
        }
    }
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

    /// A subscription to the changes other processes announce; `None` on SQLite.
    pub async fn integration_changes(&self) -> Result<Option<IntegrationChanges>, Error> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let pool = self.db.get_postgres_connection_pool();
        let context = "listening for integration changes";
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(|error| Error::internal(context, error))?;
        listener
            .listen(INTEGRATIONS_CHANNEL)
            .await
            .map_err(|error| Error::internal(context, error))?;
        Ok(Some(IntegrationChanges { listener }))
    }
}
