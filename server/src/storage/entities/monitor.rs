use sea_orm::entity::prelude::*;

/// A monitor (m0015).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "monitors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub description: String,
    /// `model::monitors::MonitorFilter` as JSON.
    pub filter_json: String,
    /// The ids of its checks, a JSON array, in order.
    pub check_ids_json: String,
    /// Raised when its checks change (m0016; `monitor_versions`).
    pub version: i32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
