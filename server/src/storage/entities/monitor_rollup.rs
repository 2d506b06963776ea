use sea_orm::entity::prelude::*;

/// What a monitor found in one hour: its calls (`check_id` empty) or one of its checks (m0016).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "monitor_rollups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub monitor_id: String,
    /// The start of the hour, milliseconds since the Unix epoch.
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket_ms: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub check_id: String,
    /// Calls matched (the monitor's row) or evaluated (a check's).
    pub datapoints: i64,
    /// Calls with an issue among them.
    pub issues: i64,
    /// Numeric values (booleans as 1 or 0) among the check's results, and their sum.
    pub value_count: i64,
    pub value_sum: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
