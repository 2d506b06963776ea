use sea_orm::entity::prelude::*;

/// A datapoint's tag, for tag filters. The key is that of SQLite's table (m0027), in the
/// searches' order; PostgreSQL's table keeps `(datapoint_id, tag)` as its primary key and these
/// columns as `datapoint_tags_by_organization_tag`, so they name one row there too. SQLite's
/// rows name the organization and the datapoint by their rowids instead (`organization_rowid`,
/// m0041; `datapoint_rowid`, m0038), which `storage/datapoints.rs` writes and reads in SQL of
/// its own: this model is PostgreSQL's.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "datapoint_tags")]
pub struct Model {
    /// The datapoint's, so that a tag's calls are read in the searches' order from one index.
    #[sea_orm(primary_key, auto_increment = false)]
    pub organization_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub tag: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub occurred_at_ms: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub datapoint_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
