use sea_orm::entity::prelude::*;

/// Every version of a check's rule (m0015).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "check_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub check_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    /// The check's name (names do not change; kept here for results of deleted checks).
    pub name: String,
    pub rule_json: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
