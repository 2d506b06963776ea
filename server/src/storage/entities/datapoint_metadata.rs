use sea_orm::entity::prelude::*;

/// Top-level metadata entries as text, for `metadata key = value` filters.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "datapoint_metadata")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub datapoint_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub value: String,
    /// The datapoint's, so that a pair's calls are read in the searches' order from one index.
    pub organization_id: String,
    pub occurred_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
