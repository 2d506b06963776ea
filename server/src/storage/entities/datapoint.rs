use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "datapoints")]
pub struct Model {
    /// 16 bytes on SQLite, `uuid` on PostgreSQL (m0029), as the other ids of the row.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub provider: String,
    pub call_id: String,
    pub context_token: String,
    pub source: String,
    pub transcript_source: String,
    pub speaker_labels_estimated: bool,
    pub turns_json: String,
    /// Lowercased turn contents, for substring search.
    pub transcript_search: String,
    pub audio_id: Option<String>,
    /// The integration that delivered the call (m0013); NULL for the ingest APIs.
    pub integration_id: Option<Uuid>,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    /// started_at_ms when known, else when the first ingest was accepted: the time filters use it.
    pub occurred_at_ms: i64,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub direction: Option<String>,
    pub analysis_json: String,
    pub cost_usd: Option<f64>,
    pub tags_json: String,
    pub metadata_json: String,
    pub metrics_json: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Unresolved issues among its check results (m0015), kept by the commits that write them.
    pub open_issues: i32,
    /// The provider's verdicts from `analysis_json`, text lower-cased (m0018), for searches.
    pub verdict_successful: Option<bool>,
    pub verdict_sentiment: Option<String>,
    pub verdict_outcome: Option<String>,
    /// The turns, analysis, metrics, tags and metadata, compressed (m0026; `Document`). NULL
    /// on rows written before, which keep them in the JSON columns; those are empty when it is
    /// set.
    pub document: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
