//! Organizations, projects and API keys.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::entities::{api_key, organization, project};
use super::{Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::model::auth::{ApiKeyRecord, Scope};
use crate::model::projects::{Organization, Project, Retention};

impl Storage {
    pub async fn count_organizations(&self) -> Result<u64, Error> {
        organization::Entity::find()
            .count(&self.db)
            .await
            .map_err(db_error("counting organizations"))
    }

    /// Organization, project and admin key in one transaction: all or nothing.
    pub async fn insert_bootstrap(
        &self,
        organization: &Organization,
        project: &Project,
        key: &ApiKeyRecord,
        key_hash: &str,
    ) -> Result<(), Error> {
        let context = "bootstrapping the first organization";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        organization::Entity::insert(organization::ActiveModel {
            id: Set(organization.id.to_string()),
            name: Set(organization.name.clone()),
            created_at_ms: Set(to_millis(organization.created_at)),
        })
        .exec(&transaction)
        .await
        .map_err(db_error(context))?;
        project::Entity::insert(project_active_model(project))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        api_key::Entity::insert(api_key_active_model(key, key_hash))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }

    pub async fn insert_project(&self, project: &Project) -> Result<(), Error> {
        project::Entity::insert(project_active_model(project))
            .exec(&self.db)
            .await
            .map_err(db_error("creating a project"))?;
        Ok(())
    }

    pub async fn list_projects(&self, organization_id: Uuid) -> Result<Vec<Project>, Error> {
        project::Entity::find()
            .filter(project::Column::OrganizationId.eq(organization_id.to_string()))
            .order_by_asc(project::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error("listing projects"))?
            .into_iter()
            .map(project_from_model)
            .collect()
    }

    pub async fn get_project(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Project>, Error> {
        project::Entity::find_by_id(id.to_string())
            .filter(project::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error("reading a project"))?
            .map(project_from_model)
            .transpose()
    }

    pub async fn set_project_retention(
        &self,
        organization_id: Uuid,
        project_id: Uuid,
        retention: Retention,
    ) -> Result<(), Error> {
        project::Entity::update_many()
            .col_expr(
                project::Column::DatapointRetentionDays,
                retention.datapoint_days.map(days_column).into(),
            )
            .col_expr(
                project::Column::AudioRetentionDays,
                retention.audio_days.map(days_column).into(),
            )
            .col_expr(
                project::Column::DeliveryBodyRetentionDays,
                retention.delivery_body_days.map(days_column).into(),
            )
            .col_expr(
                project::Column::DeliveryRetentionDays,
                retention.delivery_days.map(days_column).into(),
            )
            .filter(project::Column::Id.eq(project_id.to_string()))
            .filter(project::Column::OrganizationId.eq(organization_id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error("setting a project's retention"))?;
        Ok(())
    }

    /// Every project with a retention of its own (calls, recordings or deliveries).
    pub async fn projects_with_retention(&self) -> Result<Vec<Project>, Error> {
        project::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(project::Column::DatapointRetentionDays.is_not_null())
                    .add(project::Column::AudioRetentionDays.is_not_null())
                    .add(project::Column::DeliveryBodyRetentionDays.is_not_null())
                    .add(project::Column::DeliveryRetentionDays.is_not_null()),
            )
            .all(&self.db)
            .await
            .map_err(db_error("listing projects with a retention"))?
            .into_iter()
            .map(project_from_model)
            .collect()
    }

    pub async fn insert_api_key(&self, key: &ApiKeyRecord, key_hash: &str) -> Result<(), Error> {
        api_key::Entity::insert(api_key_active_model(key, key_hash))
            .exec(&self.db)
            .await
            .map_err(db_error("creating an api key"))?;
        Ok(())
    }

    pub async fn find_api_key_by_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, Error> {
        api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(key_hash))
            .one(&self.db)
            .await
            .map_err(db_error("looking up an api key"))?
            .map(api_key_from_model)
            .transpose()
    }

    pub async fn get_api_key(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<ApiKeyRecord>, Error> {
        api_key::Entity::find_by_id(id.to_string())
            .filter(api_key::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error("reading an api key"))?
            .map(api_key_from_model)
            .transpose()
    }

    pub async fn list_api_keys(&self, organization_id: Uuid) -> Result<Vec<ApiKeyRecord>, Error> {
        api_key::Entity::find()
            .filter(api_key::Column::OrganizationId.eq(organization_id.to_string()))
            .order_by_asc(api_key::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error("listing api keys"))?
            .into_iter()
            .map(api_key_from_model)
            .collect()
    }

    pub async fn revoke_api_key(
        &self,
        organization_id: Uuid,
        id: Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAtMs, sea_orm::sea_query::Expr::value(to_millis(at)))
            .filter(api_key::Column::Id.eq(id.to_string()))
            .filter(api_key::Column::OrganizationId.eq(organization_id.to_string()))
            .filter(api_key::Column::RevokedAtMs.is_null())
            .exec(&self.db)
            .await
            .map_err(db_error("revoking an api key"))?;
        Ok(())
    }

    pub async fn touch_api_key(
        &self,
        id: Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAtMs, sea_orm::sea_query::Expr::value(to_millis(at)))
            .filter(api_key::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error("recording api key use"))?;
        Ok(())
    }
}

fn project_active_model(project: &Project) -> project::ActiveModel {
    project::ActiveModel {
        id: Set(project.id.to_string()),
        organization_id: Set(project.organization_id.to_string()),
        name: Set(project.name.clone()),
        created_at_ms: Set(to_millis(project.created_at)),
        datapoint_retention_days: Set(project.retention.datapoint_days.map(days_column)),
        audio_retention_days: Set(project.retention.audio_days.map(days_column)),
        delivery_body_retention_days: Set(project.retention.delivery_body_days.map(days_column)),
        delivery_retention_days: Set(project.retention.delivery_days.map(days_column)),
    }
}

fn days_column(days: u32) -> i32 {
    i32::try_from(days).unwrap_or(i32::MAX)
}

fn project_from_model(model: project::Model) -> Result<Project, Error> {
    let context = "reading a project";
    Ok(Project {
        id: parse_uuid(context, &model.id)?,
        organization_id: parse_uuid(context, &model.organization_id)?,
        name: model.name,
        created_at: from_millis(model.created_at_ms),
        retention: Retention {
            datapoint_days: model
                .datapoint_retention_days
                .and_then(|days| u32::try_from(days).ok()),
            audio_days: model.audio_retention_days.and_then(|days| u32::try_from(days).ok()),
            delivery_body_days: model
                .delivery_body_retention_days
                .and_then(|days| u32::try_from(days).ok()),
            delivery_days: model.delivery_retention_days.and_then(|days| u32::try_from(days).ok()),
        },
    })
}

fn api_key_active_model(key: &ApiKeyRecord, key_hash: &str) -> api_key::ActiveModel {
    api_key::ActiveModel {
        id: Set(key.id.to_string()),
        organization_id: Set(key.organization_id.to_string()),
        project_id: Set(key.project_id.map(|id| id.to_string())),
        name: Set(key.name.clone()),
        key_hash: Set(key_hash.to_owned()),
        key_prefix: Set(key.key_prefix.clone()),
        scopes: Set(key.scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(",")),
        created_at_ms: Set(to_millis(key.created_at)),
        revoked_at_ms: Set(key.revoked_at.map(to_millis)),
        last_used_at_ms: Set(key.last_used_at.map(to_millis)),
    }
}

fn api_key_from_model(model: api_key::Model) -> Result<ApiKeyRecord, Error> {
    let context = "reading an api key";
    Ok(ApiKeyRecord {
        id: parse_uuid(context, &model.id)?,
        organization_id: parse_uuid(context, &model.organization_id)?,
        project_id: model.project_id.as_deref().map(|id| parse_uuid(context, id)).transpose()?,
        name: model.name,
        key_prefix: model.key_prefix,
        scopes: model.scopes.split(',').filter_map(Scope::parse).collect(),
        created_at: from_millis(model.created_at_ms),
        revoked_at: model.revoked_at_ms.map(from_millis),
        last_used_at: model.last_used_at_ms.map(from_millis),
    })
}
