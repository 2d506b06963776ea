use sea_orm::entity::prelude::*;

/// One attempt to deliver an event to an endpoint (m0019).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub attempted_at_ms: i64,
    pub http_status: Option<i32>,
    pub latency_ms: i64,
    pub response_excerpt: String,
    pub error: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
