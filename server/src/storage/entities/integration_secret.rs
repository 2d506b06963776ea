use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_secrets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub integration_id: String,
    pub generation: i32,
    pub name: String,
    /// nonce || AES-256-GCM ciphertext || tag.
    pub ciphertext: Vec<u8>,
    /// Id of the master key that sealed the value.
    pub key_id: String,
    pub last4: String,
    pub created_at_ms: i64,
    /// None for the current set; the grace deadline for replaced sets.
    pub expires_at_ms: Option<i64>,
    /// When `integration.secret_expiring` was written for this replaced set (m0021).
    pub expiry_notified_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
