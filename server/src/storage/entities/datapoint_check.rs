use sea_orm::entity::prelude::*;

/// All check results of one call (m0015), and the monitors that matched it (m0028): every
/// evaluated call has one.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "datapoint_checks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub datapoint_id: Uuid,
    pub organization_id: Uuid,
    /// `storage::monitors::StoredResult`s, a JSON array.
    pub results_json: String,
    /// The monitors that matched the call (m0028; `storage::monitors::StoredMatches`), empty
    /// when none did: their rows in `monitor_datapoints` are found by these keys.
    pub matches_json: String,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
