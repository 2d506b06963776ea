//! The console's sessions (m0023): opened at sign-in, read on every console request by the
//! hash of the cookie's token, ended at sign-out or expiry.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::entities::console_session;
use super::{Storage, db_error, parse_uuid};
use crate::clock::to_millis;
use crate::error::Error;

impl Storage {
    pub async fn insert_console_session(
        &self,
        token_hash: &str,
        organization_id: Uuid,
        api_key_id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "opening a console session";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        console_session::Entity::insert(console_session::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            organization_id: Set(organization_id.to_string()),
            api_key_id: Set(api_key_id.to_string()),
            created_at_ms: Set(to_millis(now)),
            expires_at_ms: Set(to_millis(expires_at)),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db_error(context))?;
        // Ended sessions leave as new ones open (`console_sessions_by_expiry`).
        console_session::Entity::delete_many()
            .filter(console_session::Column::ExpiresAtMs.lte(to_millis(now)))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// The organization and API key of the session `token_hash`, if it has not ended at `now`.
    pub async fn console_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Uuid, Uuid)>, Error> {
        let context = "reading a console session";
        let Some(model) = console_session::Entity::find_by_id(token_hash.to_owned())
            .filter(console_session::Column::ExpiresAtMs.gt(to_millis(now)))
            .one(&self.db)
            .await
            .map_err(db_error(context))?
        else {
            return Ok(None);
        };
        Ok(Some((
            parse_uuid(context, &model.organization_id)?,
            parse_uuid(context, &model.api_key_id)?,
        )))
    }

    pub async fn delete_console_session(&self, token_hash: &str) -> Result<(), Error> {
        let context = "ending a console session";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        console_session::Entity::delete_by_id(token_hash.to_owned())
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }
}
