use sea_orm::entity::prelude::*;

/// An open issue: a check whose result on a call is an issue nobody marked resolved (m0015).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "check_issues")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub datapoint_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub check_id: String,
    pub organization_id: Uuid,
    pub name: String,
    /// The datapoint's, so a check's failures are read in the searches' order.
    pub occurred_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
