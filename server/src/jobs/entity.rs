use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    /// `jobs::JobPayload` as JSON (`{"type": "IngestV1", ...}`).
    pub payload_json: String,
    /// What the job works on, when it travels with the job rather than being read from what
    /// the job names (an ingest's conversation, as `storage`'s stored conversation JSON); the
    /// row leaves the table when the job succeeds, and the input with it.
    pub input_json: Option<String>,
    /// queued | running | succeeded | parked | dead
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
    pub last_error: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
