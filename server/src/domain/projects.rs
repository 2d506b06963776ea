//! Organizations, projects, and the first-start bootstrap.

use uuid::Uuid;

use super::Domain;
use crate::crypto::{SecretValue, api_key};
use crate::error::{Error, Result};
use crate::model::auth::{ApiKeyRecord, Principal, Scope};
use crate::model::projects::{MAX_RETENTION_DAYS, Organization, Project, Retention};

/// What a bootstrap created; the key value is shown once.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub organization: Organization,
    pub project: Project,
    pub api_key: ApiKeyRecord,
    pub api_key_value: SecretValue,
}

pub const DEFAULT_PROJECT_NAME: &str = "Default";

impl Domain {
    /// Creates an organization, its `Default` project and an admin API key, in one transaction.
    ///
    /// With `only_if_empty`, does nothing (and returns None) when an organization exists, which
    /// makes the first start idempotent.
    pub async fn bootstrap(&self, only_if_empty: bool) -> Result<Option<Bootstrap>> {
        if only_if_empty && self.storage.count_organizations().await? > 0 {
            return Ok(None);
        }
        let now = self.clock.now();
        let organization = Organization {
            id: Uuid::now_v7(),
            name: "Default organization".to_owned(),
            created_at: now,
        };
        let project = Project {
            id: Uuid::now_v7(),
            organization_id: organization.id,
            name: DEFAULT_PROJECT_NAME.to_owned(),
            created_at: now,
            retention: Retention::default(),
        };
        let generated = api_key::generate();
        let api_key = ApiKeyRecord {
            id: Uuid::now_v7(),
            organization_id: organization.id,
            project_id: None,
            name: "bootstrap admin".to_owned(),
            key_prefix: generated.display_prefix.clone(),
            scopes: vec![Scope::Admin],
            created_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        self.storage.insert_bootstrap(&organization, &project, &api_key, &generated.hash).await?;
        tracing::info!(organization_id = %organization.id, project_id = %project.id, "bootstrapped organization");
        Ok(Some(Bootstrap { organization, project, api_key, api_key_value: generated.value }))
    }

    pub async fn create_project(&self, principal: &Principal, name: &str) -> Result<Project> {
        principal.require(Scope::Admin)?;
        if principal.project_id.is_some() {
            return Err(Error::PermissionDenied(
                "a key restricted to one project cannot create projects".to_owned(),
            ));
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::invalid("name", "required"));
        }
        if name.chars().count() > 200 {
            return Err(Error::invalid("name", "must be at most 200 characters"));
        }
        let project = Project {
            id: Uuid::now_v7(),
            organization_id: principal.organization_id,
            name: name.to_owned(),
            created_at: self.clock.now(),
            retention: Retention::default(),
        };
        self.storage.insert_project(&project).await?;
        Ok(project)
    }

    /// Every key may list the projects it can see (clients call this to validate a key).
    pub async fn list_projects(&self, principal: &Principal) -> Result<Vec<Project>> {
        let projects = self.storage.list_projects(principal.organization_id).await?;
        Ok(projects
            .into_iter()
            .filter(|project| principal.may_access_project(project.id))
            .collect())
    }

    /// Sets how long a project keeps its calls and its recordings (`None`: forever). Needs the
    /// admin scope. What is already older than a new retention goes at the next sweep.
    pub async fn set_project_retention(
        &self,
        principal: &Principal,
        project_id: Uuid,
        retention: Retention,
    ) -> Result<Project> {
        principal.require(Scope::Admin)?;
        let mut violations = crate::error::Violations::new();
        for (field, days) in [
            ("retention.datapoint_days", retention.datapoint_days),
            ("retention.audio_days", retention.audio_days),
            ("retention.delivery_body_days", retention.delivery_body_days),
            ("retention.delivery_days", retention.delivery_days),
        ] {
            if days.is_some_and(|days| !(1..=MAX_RETENTION_DAYS).contains(&days)) {
                violations.add(
                    field,
                    format!("must be between 1 and {MAX_RETENTION_DAYS} days, or unset (forever)"),
                );
            }
        }
        let webhooks = &self.settings.webhooks;
        let days = |retention: chrono::Duration| u32::try_from(retention.num_days()).unwrap_or(0);
        let bodies = retention.delivery_body_days.unwrap_or(days(webhooks.body_retention));
        let deliveries = retention.delivery_days.unwrap_or(days(webhooks.delivery_retention));
        if bodies > deliveries {
            violations.add(
                "retention.delivery_body_days",
                format!("must not exceed how long the deliveries are kept ({deliveries} days)"),
            );
        }
        violations.into_result()?;
        let mut project = self.project_for(principal, project_id).await?;
        self.storage.set_project_retention(project.organization_id, project.id, retention).await?;
        project.retention = retention;
        Ok(project)
    }

    /// A project the principal may access, or NOT_FOUND.
    pub async fn project_for(&self, principal: &Principal, project_id: Uuid) -> Result<Project> {
        let not_found = || Error::not_found(format!("project {project_id} not found"));
        if !principal.may_access_project(project_id) {
            return Err(not_found());
        }
        self.storage.get_project(principal.organization_id, project_id).await?.ok_or_else(not_found)
    }
}
