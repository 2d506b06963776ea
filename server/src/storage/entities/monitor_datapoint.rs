use sea_orm::entity::prelude::*;

/// A call a monitor matched (m0015), keyed by call then monitor (m0017).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "monitor_datapoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub datapoint_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub monitor_id: String,
    pub organization_id: String,
    pub occurred_at_ms: i64,
    /// Whether any of the monitor's checks is an issue on the call.
    pub is_issue: bool,
    /// The monitor's version that evaluated the call (m0016); 0 before m0016 (no version's
    /// checks: the summary holds only the call and its issue).
    pub monitor_version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
