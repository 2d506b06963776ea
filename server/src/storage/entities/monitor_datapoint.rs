use sea_orm::entity::prelude::*;

/// A call a monitor matched (m0015). Its primary key is SQLite's (m0028: the order the searches
/// by monitor read, and the only B-tree); on PostgreSQL, whose table is keyed by (call,
/// monitor) with an index in this order, it names one row too.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "monitor_datapoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub monitor_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub occurred_at_ms: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub datapoint_id: Uuid,
    /// Whether any of the monitor's checks is an issue on the call.
    pub is_issue: bool,
    /// The monitor's version that evaluated the call (m0016); 0 before m0016 (no version's
    /// checks: the summary holds only the call and its issue).
    pub monitor_version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
