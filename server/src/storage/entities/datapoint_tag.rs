use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "datapoint_tags")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub datapoint_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub tag: String,
    /// The datapoint's, so that a tag's calls are read in the searches' order from one index.
    pub organization_id: String,
    pub occurred_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
