use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub project_id: String,
    pub provider: String,
    pub display_name: String,
    #[sea_orm(unique)]
    pub public_id: String,
    pub auth_type: String,
    pub status: String,
    /// `IntegrationOptions` as JSON text.
    pub options_json: String,
    pub request_count: i64,
    /// Webhook requests refused by a rate limit (counted, not logged as deliveries).
    pub rate_limited_count: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub last_validated_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
