use sea_orm::entity::prelude::*;

/// A monitor's checks at one of its versions (m0016).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "monitor_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub monitor_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    /// The ids of its checks, a JSON array, in order.
    pub check_ids_json: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
