use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// 16 bytes on SQLite, `uuid` on PostgreSQL (m0029), as every id of the row.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Its organization and project are this integration's, not stored in the row (m0036).
    pub integration_id: Uuid,
    pub received_at_ms: i64,
    /// accepted | duplicate | ignored | rejected
    pub verdict: String,
    pub http_status: i32,
    pub event_type: String,
    pub call_id: String,
    pub body_sha256: String,
    /// The reason code of a rejection (`signature_mismatch`, `rate_limited`, ...); empty otherwise.
    pub error: String,
    pub error_message: String,
    pub ingest_id: Option<Uuid>,
    /// The request passed authentication.
    pub authenticated: bool,
    /// `StoredRequest` as JSON (URL and headers, credentials left out); None after retention.
    pub request_json: Option<String>,
    /// The raw body; None after retention, or when the body was never read.
    pub body: Option<Vec<u8>>,
    /// How `body` is stored: empty for as it arrived, `deflate` for compressed.
    pub body_encoding: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
