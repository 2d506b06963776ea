use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub created_at_ms: i64,
    /// `Retention::datapoint_days`; NULL keeps datapoints forever.
    pub datapoint_retention_days: Option<i32>,
    /// `Retention::audio_days`; NULL keeps recordings forever.
    pub audio_retention_days: Option<i32>,
    /// `Retention::delivery_body_days`; NULL takes the server's setting.
    pub delivery_body_retention_days: Option<i32>,
    /// `Retention::delivery_days`; NULL takes the server's setting.
    pub delivery_retention_days: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
