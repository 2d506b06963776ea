use sea_orm::entity::prelude::*;

/// One check's result on one datapoint (m0015).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "check_results")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub datapoint_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub check_id: String,
    pub organization_id: String,
    pub check_version: i32,
    pub name: String,
    /// `model::checks::Value` as JSON, `null` when the call does not have the measure.
    pub value_json: String,
    pub value_type: String,
    pub is_issue: bool,
    pub explanation: String,
    /// `monitor` (evaluated by earshot) or `external` (attached through the API).
    pub origin: String,
    /// The datapoint's, so results are read in the searches' order.
    pub occurred_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
