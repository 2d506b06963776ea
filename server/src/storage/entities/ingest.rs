use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ingests")]
pub struct Model {
    /// 16 bytes on SQLite, `uuid` on PostgreSQL (m0029), as every id of the row.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub call_id: String,
    pub context_token: String,
    pub provider: String,
    pub source: String,
    /// Unique per project: a repeated delivery of the same content finds the first ingest.
    pub dedup_key: String,
    pub state: String,
    /// The canonical conversation as versioned JSON.
    pub payload_json: String,
    pub datapoint_id: Option<Uuid>,
    pub attempts: i32,
    pub last_error: String,
    pub next_attempt_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
