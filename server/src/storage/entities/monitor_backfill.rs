use sea_orm::entity::prelude::*;

/// A monitor's evaluation over stored calls (m0016).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "monitor_backfills")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub monitor_id: String,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// The last call done, in the searches' order (newest first); none before the first batch.
    pub cursor_occurred_at_ms: Option<i64>,
    pub cursor_id: Option<String>,
    /// Calls in its range when it started.
    pub total: i64,
    pub processed: i64,
    pub matched: i64,
    pub issues: i64,
    pub error: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
