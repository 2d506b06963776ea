use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audio_objects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub project_id: String,
    pub sha256: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub blob_key: String,
    pub duration_ms: Option<i64>,
    pub channels: Option<i32>,
    pub sample_rate_hz: Option<i32>,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
