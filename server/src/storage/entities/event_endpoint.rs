use sea_orm::entity::prelude::*;

/// An organization's receiver of outbound events (m0019).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub url: String,
    pub description: String,
    pub event_types_json: String,
    pub filter_json: String,
    pub include_transcript: bool,
    pub rate_limit_per_second: Option<i32>,
    /// `[{"key_id", "sealed" (base64), "expires_at_ms"}]`, the current secret first.
    pub secrets_json: String,
    /// `{"key_id", "sealed"}` of the headers' JSON object, or `{}` without headers, and their
    /// names (`"names"`).
    pub headers_json: String,
    pub enabled: bool,
    pub disabled_reason: String,
    pub failing_since_ms: Option<i64>,
    pub sent: i64,
    pub failed: i64,
    pub last_success_at_ms: Option<i64>,
    pub last_failure_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// `webhook` or `slack` (m0022).
    pub kind: String,
    /// `check.failed` at most once per monitor per this many seconds; 0: every one (m0022).
    pub alert_cooldown_seconds: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
