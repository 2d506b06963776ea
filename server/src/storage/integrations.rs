//! Integrations and their sealed secrets.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::{integration, integration_secret};
use super::{Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::crypto::SealedSecret;
use crate::error::Error;
use crate::model::integrations::{
    Integration, IntegrationOptions, IntegrationStatus, NewSealedSecret, Provider, SecretMetadata,
    StoredSecret, WebhookAuthType,
};

impl Storage {
    /// The integration row and its first secret generation, in one transaction.
    pub async fn insert_integration(
        &self,
        integration: &Integration,
        secrets: &[NewSealedSecret],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "creating an integration";
        let options_json = serde_json::to_string(&integration.options)
            .map_err(|error| Error::internal(context, error))?;
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        integration::Entity::insert(integration::ActiveModel {
            id: Set(integration.id.to_string()),
            organization_id: Set(integration.organization_id.to_string()),
            project_id: Set(integration.project_id.to_string()),
            provider: Set(integration.provider.as_str().to_owned()),
            display_name: Set(integration.display_name.clone()),
            public_id: Set(integration.public_id.clone()),
            auth_type: Set(integration.auth_type.as_str().to_owned()),
            status: Set(integration.status.as_str().to_owned()),
            options_json: Set(options_json),
            request_count: Set(integration.request_count),
            rate_limited_count: Set(integration.rate_limited_count),
            created_at_ms: Set(to_millis(integration.created_at)),
            updated_at_ms: Set(to_millis(integration.updated_at)),
            last_used_at_ms: Set(integration.last_used_at.map(to_millis)),
            last_validated_at_ms: Set(integration.last_validated_at.map(to_millis)),
        })
        .exec(&transaction)
        .await
        .map_err(db_error(context))?;
        insert_secrets(&transaction, integration.id, 1, secrets, now, context).await?;
        transaction.commit().await.map_err(db_error(context))
    }

    pub async fn get_integration(
        &self,
        organization_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Integration>, Error> {
        let model = integration::Entity::find_by_id(id.to_string())
            .filter(integration::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error("reading an integration"))?;
        self.with_secret_metadata(model.into_iter().collect(), now)
            .await
            .map(|mut found| found.pop())
    }

    pub async fn get_integration_by_public_id(
        &self,
        public_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Integration>, Error> {
        let model = integration::Entity::find()
            .filter(integration::Column::PublicId.eq(public_id))
            .one(&self.db)
            .await
            .map_err(db_error("looking up an integration by public id"))?;
        self.with_secret_metadata(model.into_iter().collect(), now)
            .await
            .map(|mut found| found.pop())
    }

    /// Integrations of a project in id (creation) order, after `after`.
    pub async fn list_integrations(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
        provider: Option<Provider>,
        after: Option<Uuid>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Integration>, Error> {
        let mut query = integration::Entity::find()
            .filter(integration::Column::OrganizationId.eq(organization_id.to_string()))
            .filter(integration::Column::ProjectId.eq(project_id.to_string()));
        if let Some(provider) = provider {
            query = query.filter(integration::Column::Provider.eq(provider.as_str()));
        }
        if let Some(after) = after {
            query = query.filter(integration::Column::Id.gt(after.to_string()));
        }
        let models = query
            .order_by_asc(integration::Column::Id)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .all(&self.db)
            .await
            .map_err(db_error("listing integrations"))?;
        self.with_secret_metadata(models, now).await
    }

    /// The ids of every integration of a project (`integrations_by_project`).
    pub async fn integrations_of(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
    ) -> Result<Vec<Uuid>, Error> {
        let context = "listing the integrations of a project";
        let found: Vec<String> = integration::Entity::find()
            .select_only()
            .column(integration::Column::Id)
            .filter(integration::Column::OrganizationId.eq(organization_id.to_string()))
            .filter(integration::Column::ProjectId.eq(project_id.to_string()))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error(context))?;
        found
            .iter()
            .map(|id| Uuid::parse_str(id).map_err(|error| Error::internal(context, error)))
            .collect()
    }

    pub async fn update_integration(
        &self,
        organization_id: Uuid,
        id: Uuid,
        display_name: &str,
        options: &IntegrationOptions,
        updated_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "updating an integration";
        let options_json =
            serde_json::to_string(options).map_err(|error| Error::internal(context, error))?;
        integration::Entity::update_many()
            .col_expr(integration::Column::DisplayName, Expr::value(display_name))
            .col_expr(integration::Column::OptionsJson, Expr::value(options_json))
            .col_expr(integration::Column::UpdatedAtMs, Expr::value(to_millis(updated_at)))
            .filter(integration::Column::Id.eq(id.to_string()))
            .filter(integration::Column::OrganizationId.eq(organization_id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error(context))?;
        Ok(())
    }

    /// Adds counted webhook requests to each integration and moves its last-used and
    /// last-validated times forward, in one transaction.
    pub async fn add_integration_usage(
        &self,
        usage: &[(Uuid, crate::model::integrations::Usage)],
    ) -> Result<(), Error> {
        let context = "recording integration usage";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        for (id, usage) in usage {
            let mut update = integration::Entity::update_many()
                .col_expr(
                    integration::Column::RequestCount,
                    Expr::col(integration::Column::RequestCount).add(usage.requests),
                )
                .col_expr(
                    integration::Column::RateLimitedCount,
                    Expr::col(integration::Column::RateLimitedCount).add(usage.rate_limited),
                );
            for (column, time) in [
                (integration::Column::LastUsedAtMs, usage.last_used_at),
                (integration::Column::LastValidatedAtMs, usage.last_validated_at),
            ] {
                if let Some(time) = time {
                    // The later of the stored time and this one (another server may have
                    // written a later time meanwhile).
                    update = update.col_expr(
                        column,
                        Expr::case(
                            Expr::col(column).is_null().or(Expr::col(column).lt(to_millis(time))),
                            to_millis(time),
                        )
                        .finally(Expr::col(column))
                        .into(),
                    );
                }
            }
            update
                .filter(integration::Column::Id.eq(id.to_string()))
                .exec(&transaction)
                .await
                .map_err(db_error(context))?;
        }
        transaction.commit().await.map_err(db_error(context))
    }

    pub async fn set_integration_status(
        &self,
        organization_id: Uuid,
        id: Uuid,
        status: IntegrationStatus,
        updated_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "changing an integration's status";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        // Only a change counts: disabling a disabled integration sends no event.
        let changed = integration::Entity::update_many()
            .col_expr(integration::Column::Status, Expr::value(status.as_str()))
            .col_expr(integration::Column::UpdatedAtMs, Expr::value(to_millis(updated_at)))
            .filter(integration::Column::Id.eq(id.to_string()))
            .filter(integration::Column::OrganizationId.eq(organization_id.to_string()))
            .filter(integration::Column::Status.ne(status.as_str()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?
            .rows_affected
            > 0;
        if changed && status == IntegrationStatus::Disabled {
            let model = integration::Entity::find_by_id(id.to_string())
                .one(&transaction)
                .await
                .map_err(db_error(context))?;
            if let Some(model) = model {
                let data = crate::model::events::integration_disabled(
                    id,
                    organization_id,
                    &model.project_id,
                    &model.provider,
                    &model.display_name,
                );
                let mut batch = super::Batch::new(transaction.get_database_backend());
                super::events::integration_event_into(
                    &transaction,
                    organization_id,
                    &model.provider,
                    crate::model::events::INTEGRATION_DISABLED,
                    &data,
                    &mut batch,
                    updated_at,
                    context,
                )
                .await?;
                batch.execute(&transaction, context).await?;
            }
        }
        transaction.commit().await.map_err(db_error(context))
    }

    /// Announces the replaced secret sets whose grace ends before `until` (and has not ended
    /// at `now`): marks their rows, and writes an `integration.secret_expiring` per
    /// integration and generation for the endpoints that want it, in one transaction. A set
    /// is announced once, by whichever process looks first (the marking `UPDATE … RETURNING`
    /// takes only unmarked rows, by `integration_secrets_to_announce`). Returns how many sets.
    pub async fn announce_expiring_secrets(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<usize, Error> {
        use std::collections::BTreeMap;
        let context = "announcing expiring integration secrets";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let backend = transaction.get_database_backend();
        let p = |index: usize| match backend {
            sea_orm::DbBackend::Postgres => format!("${index}"),
            _ => format!("?{index}"),
        };
        let sql = format!(
            "UPDATE integration_secrets SET expiry_notified_at_ms = {now} \
             WHERE expires_at_ms IS NOT NULL AND expiry_notified_at_ms IS NULL \
             AND expires_at_ms > {now} AND expires_at_ms <= {until} \
             RETURNING integration_id, generation, name, expires_at_ms",
            now = p(1),
            until = p(2),
        );
        let rows = transaction
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                sql,
                [to_millis(now).into(), to_millis(until).into()],
            ))
            .await
            .map_err(db_error(context))?;
        // (integration, generation) -> (deadline, names)
        let mut sets: BTreeMap<(String, i32), (i64, Vec<String>)> = BTreeMap::new();
        for row in rows {
            let get = |error| Error::internal(context, error);
            let integration_id: String = row.try_get("", "integration_id").map_err(get)?;
            let generation: i32 = row.try_get("", "generation").map_err(get)?;
            let name: String = row.try_get("", "name").map_err(get)?;
            let expires_at_ms: i64 = row.try_get("", "expires_at_ms").map_err(get)?;
            let set =
                sets.entry((integration_id, generation)).or_insert((expires_at_ms, Vec::new()));
            set.0 = Ord::min(set.0, expires_at_ms);
            set.1.push(name);
        }
        let mut batch = super::Batch::new(backend);
        let announced = sets.len();
        for ((integration_id, generation), (expires_at_ms, mut names)) in sets {
            let Some(model) = integration::Entity::find_by_id(integration_id)
                .one(&transaction)
                .await
                .map_err(db_error(context))?
            else {
                continue;
            };
            names.sort_unstable();
            let organization_id = parse_uuid(context, &model.organization_id)?;
            let data = crate::model::events::integration_secret_expiring(
                &crate::model::events::ExpiringSecrets {
                    integration_id: parse_uuid(context, &model.id)?,
                    organization_id,
                    project_id: &model.project_id,
                    provider: &model.provider,
                    display_name: &model.display_name,
                    generation,
                    names: &names,
                    expires_at: from_millis(expires_at_ms),
                },
            );
            super::events::integration_event_into(
                &transaction,
                organization_id,
                &model.provider,
                crate::model::events::INTEGRATION_SECRET_EXPIRING,
                &data,
                &mut batch,
                now,
                context,
            )
            .await?;
        }
        batch.execute(&transaction, context).await?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(announced)
    }

    /// In one transaction: the current generation gets `previous_valid_until`; expired and
    /// surplus replaced generations are deleted; `secrets` become the new current generation.
    pub async fn rotate_integration_secrets(
        &self,
        organization_id: Uuid,
        id: Uuid,
        secrets: &[NewSealedSecret],
        previous_valid_until: DateTime<Utc>,
        now: DateTime<Utc>,
        max_previous_generations: usize,
    ) -> Result<(), Error> {
        let context = "rotating integration secrets";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let owned = integration::Entity::find_by_id(id.to_string())
            .filter(integration::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&transaction)
            .await
            .map_err(db_error(context))?;
        if owned.is_none() {
            return Err(Error::not_found(format!("integration {id} not found")));
        }
        let rows = integration_secret::Entity::find()
            .filter(integration_secret::Column::IntegrationId.eq(id.to_string()))
            .all(&transaction)
            .await
            .map_err(db_error(context))?;
        let newest_generation = rows.iter().map(|row| row.generation).max().unwrap_or(0);

        integration_secret::Entity::update_many()
            .col_expr(
                integration_secret::Column::ExpiresAtMs,
                Expr::value(to_millis(previous_valid_until)),
            )
            .filter(integration_secret::Column::IntegrationId.eq(id.to_string()))
            .filter(integration_secret::Column::ExpiresAtMs.is_null())
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;

        // Replaced generations still valid after this rotation, newest first; the just-replaced
        // one counts among them.
        let mut kept: Vec<i32> = rows
            .iter()
            .filter(|row| {
                let deadline = row.expires_at_ms.unwrap_or(to_millis(previous_valid_until));
                deadline > to_millis(now)
            })
            .map(|row| row.generation)
            .collect();
        kept.sort_unstable_by(|a, b| b.cmp(a));
        kept.dedup();
        kept.truncate(max_previous_generations);
        integration_secret::Entity::delete_many()
            .filter(integration_secret::Column::IntegrationId.eq(id.to_string()))
            .filter(integration_secret::Column::Generation.is_not_in(kept))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;

        insert_secrets(&transaction, id, newest_generation + 1, secrets, now, context).await?;
        integration::Entity::update_many()
            .col_expr(integration::Column::UpdatedAtMs, Expr::value(to_millis(now)))
            .filter(integration::Column::Id.eq(id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// Deletes the integration and every ciphertext of its secrets, in one transaction.
    pub async fn delete_integration(&self, organization_id: Uuid, id: Uuid) -> Result<(), Error> {
        let context = "deleting an integration";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let deleted = integration::Entity::delete_many()
            .filter(integration::Column::Id.eq(id.to_string()))
            .filter(integration::Column::OrganizationId.eq(organization_id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        if deleted.rows_affected == 0 {
            return Err(Error::not_found(format!("integration {id} not found")));
        }
        integration_secret::Entity::delete_many()
            .filter(integration_secret::Column::IntegrationId.eq(id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// Every stored secret row of an integration, sealed, newest generation first.
    pub async fn list_integration_secrets(
        &self,
        integration_id: Uuid,
    ) -> Result<Vec<StoredSecret>, Error> {
        integration_secret::Entity::find()
            .filter(integration_secret::Column::IntegrationId.eq(integration_id.to_string()))
            .order_by_desc(integration_secret::Column::Generation)
            .order_by_asc(integration_secret::Column::Name)
            .all(&self.db)
            .await
            .map_err(db_error("reading integration secrets"))?
            .into_iter()
            .map(stored_secret_from_model)
            .collect()
    }

    /// Re-seals every stored secret with `reseal` in one transaction (master-key rotation).
    /// Returns how many values were re-sealed. Any failure leaves every row as it was.
    /// Re-seals every sealed value in one transaction: the integrations' secrets with `reseal`,
    /// the event endpoints' signing secrets and static headers with `reseal_endpoint` (given
    /// the endpoint and whether the value is its headers). Returns how many values changed.
    pub async fn reseal_all_secrets(
        &self,
        mut reseal: impl FnMut(&StoredSecret) -> Result<SealedSecret, Error>,
        reseal_endpoint: impl FnMut(uuid::Uuid, bool, &SealedSecret) -> Result<SealedSecret, Error>,
    ) -> Result<usize, Error> {
        let context = "re-sealing integration secrets";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let rows = integration_secret::Entity::find()
            .all(&transaction)
            .await
            .map_err(db_error(context))?;
        let count = rows.len();
        for row in rows {
            let row_id = row.id.clone();
            let stored = stored_secret_from_model(row)?;
            let resealed = reseal(&stored)?;
            integration_secret::Entity::update_many()
                .col_expr(integration_secret::Column::Ciphertext, Expr::value(resealed.ciphertext))
                .col_expr(integration_secret::Column::KeyId, Expr::value(resealed.key_id))
                .filter(integration_secret::Column::Id.eq(row_id))
                .exec(&transaction)
                .await
                .map_err(db_error(context))?;
        }
        let endpoints = super::events::reseal_endpoints(&transaction, reseal_endpoint).await?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(count + endpoints)
    }

    /// Attaches current and still-valid replaced secret metadata to integration rows.
    async fn with_secret_metadata(
        &self,
        models: Vec<integration::Model>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Integration>, Error> {
        if models.is_empty() {
            return Ok(Vec::new());
        }
        let context = "reading integration secret metadata";
        let ids: Vec<String> = models.iter().map(|model| model.id.clone()).collect();
        let rows = integration_secret::Entity::find()
            .select_only()
            .columns([
                integration_secret::Column::IntegrationId,
                integration_secret::Column::Name,
                integration_secret::Column::Last4,
                integration_secret::Column::Generation,
                integration_secret::Column::CreatedAtMs,
                integration_secret::Column::ExpiresAtMs,
            ])
            .filter(integration_secret::Column::IntegrationId.is_in(ids))
            .filter(
                Condition::any()
                    .add(integration_secret::Column::ExpiresAtMs.is_null())
                    .add(integration_secret::Column::ExpiresAtMs.gt(to_millis(now))),
            )
            .order_by_desc(integration_secret::Column::Generation)
            .order_by_asc(integration_secret::Column::Name)
            .into_tuple::<(String, String, String, i32, i64, Option<i64>)>()
            .all(&self.db)
            .await
            .map_err(db_error(context))?;
        let mut by_integration: HashMap<String, Vec<SecretMetadata>> = HashMap::new();
        for (integration_id, name, last4, generation, created_at_ms, expires_at_ms) in rows {
            by_integration.entry(integration_id).or_default().push(SecretMetadata {
                name,
                last4,
                generation,
                created_at: from_millis(created_at_ms),
                expires_at: expires_at_ms.map(from_millis),
            });
        }
        models
            .into_iter()
            .map(|model| {
                let secrets = by_integration.remove(&model.id).unwrap_or_default();
                integration_from_model(model, secrets)
            })
            .collect()
    }
}

async fn insert_secrets(
    connection: &impl ConnectionTrait,
    integration_id: Uuid,
    generation: i32,
    secrets: &[NewSealedSecret],
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), Error> {
    if secrets.is_empty() {
        return Ok(());
    }
    let rows = secrets.iter().map(|secret| integration_secret::ActiveModel {
        id: Set(Uuid::now_v7().to_string()),
        integration_id: Set(integration_id.to_string()),
        generation: Set(generation),
        name: Set(secret.name.clone()),
        ciphertext: Set(secret.sealed.ciphertext.clone()),
        key_id: Set(secret.sealed.key_id.clone()),
        last4: Set(secret.last4.clone()),
        created_at_ms: Set(to_millis(now)),
        expires_at_ms: Set(None),
        expiry_notified_at_ms: Set(None),
    });
    integration_secret::Entity::insert_many(rows)
        .exec(connection)
        .await
        .map_err(db_error(context))?;
    Ok(())
}

fn stored_secret_from_model(model: integration_secret::Model) -> Result<StoredSecret, Error> {
    Ok(StoredSecret {
        integration_id: parse_uuid("reading integration secrets", &model.integration_id)?,
        name: model.name,
        generation: model.generation,
        sealed: SealedSecret { key_id: model.key_id, ciphertext: model.ciphertext },
        expires_at: model.expires_at_ms.map(from_millis),
    })
}

fn integration_from_model(
    model: integration::Model,
    secrets: Vec<SecretMetadata>,
) -> Result<Integration, Error> {
    let context = "reading an integration";
    let corrupt = |what: &str| Error::internal(context, format!("stored {what} is not recognised"));
    Ok(Integration {
        id: parse_uuid(context, &model.id)?,
        organization_id: parse_uuid(context, &model.organization_id)?,
        project_id: parse_uuid(context, &model.project_id)?,
        provider: Provider::parse(&model.provider).ok_or_else(|| corrupt("provider"))?,
        display_name: model.display_name,
        public_id: model.public_id,
        auth_type: WebhookAuthType::parse(&model.auth_type).ok_or_else(|| corrupt("auth type"))?,
        status: IntegrationStatus::parse(&model.status).ok_or_else(|| corrupt("status"))?,
        options: serde_json::from_str(&model.options_json)
            .map_err(|error| Error::internal(context, error))?,
        secrets,
        request_count: model.request_count,
        rate_limited_count: model.rate_limited_count,
        created_at: from_millis(model.created_at_ms),
        updated_at: from_millis(model.updated_at_ms),
        last_used_at: model.last_used_at_ms.map(from_millis),
        last_validated_at: model.last_validated_at_ms.map(from_millis),
    })
}
