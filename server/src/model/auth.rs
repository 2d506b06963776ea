//! Who is calling: API key records, their scopes, and the principal a request acts as.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Admin,
    Ingest,
    Read,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Scope::Admin),
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            _ => None,
        }
    }
}

/// A stored API key, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub name: String,
    pub key_prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Who is calling: the organization and what its key allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub organization_id: Uuid,
    pub api_key_id: Uuid,
    pub scopes: Vec<Scope>,
    pub project_id: Option<Uuid>,
}

impl Principal {
    /// Admin implies every scope.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!("this API key lacks the {} scope", scope.as_str())))
        }
    }

    /// Whether the key may touch this project at all (organization is checked by the query).
    pub fn may_access_project(&self, project_id: Uuid) -> bool {
        self.project_id.is_none_or(|restricted| restricted == project_id)
    }
}
