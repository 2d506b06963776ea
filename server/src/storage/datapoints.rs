//! Datapoints and their search.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::{datapoint, datapoint_metadata, datapoint_tag};
use super::ingest::{IngestChange, set_ingest_state};
use super::{Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::jobs::{JobStatus, queue};
use crate::model::conversation::Source;
use crate::model::datapoints::{
    Datapoint, DatapointQuery, DatapointView, TranscriptSource, metadata_filter_text,
};
use crate::model::ingest::IngestState;

impl Storage {
    pub async fn find_datapoint(
        &self,
        project_id: Uuid,
        provider: &str,
        call_id: &str,
    ) -> Result<Option<Datapoint>, Error> {
        datapoint::Entity::find()
            .filter(datapoint::Column::ProjectId.eq(project_id.to_string()))
            .filter(datapoint::Column::Provider.eq(provider))
            .filter(datapoint::Column::CallId.eq(call_id))
            .one(&self.db)
            .await
            .map_err(db_error("reading a datapoint"))?
            .map(datapoint_from_model)
            .transpose()
    }

    /// In one transaction: the datapoint (inserted or updated) with its tag and metadata rows,
    /// the ingest marked done with the job's `attempts`, its job succeeded.
    pub async fn finish_ingest(
        &self,
        job_id: Uuid,
        ingest_id: Uuid,
        attempts: i32,
        datapoint: &Datapoint,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "storing a datapoint";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let exists = datapoint::Entity::find_by_id(datapoint.id.to_string())
            .select_only()
            .column(datapoint::Column::Id)
            .into_tuple::<String>()
            .one(&transaction)
            .await
            .map_err(db_error(context))?
            .is_some();
        let model = datapoint_active_model(datapoint)?;
        if exists {
            model.update(&transaction).await.map_err(db_error(context))?;
        } else {
            datapoint::Entity::insert(model)
                .exec_without_returning(&transaction)
                .await
                .map_err(db_error(context))?;
        }
        replace_search_rows(&transaction, datapoint, context).await?;
        queue::set_status(&transaction, job_id, JobStatus::Succeeded, None, "", now)
            .await
            .map_err(db_error(context))?;
        let change =
            IngestChange { attempts: Some(attempts), ..IngestChange::to(IngestState::Done) };
        set_ingest_state(&transaction, ingest_id, change, now, context).await?;
        super::entities::ingest::Entity::update_many()
            .col_expr(
                super::entities::ingest::Column::DatapointId,
                Expr::value(datapoint.id.to_string()),
            )
            .filter(super::entities::ingest::Column::Id.eq(ingest_id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }

    pub async fn get_datapoint(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<DatapointView>, Error> {
        let model = datapoint::Entity::find_by_id(id.to_string())
            .filter(datapoint::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error("reading a datapoint"))?;
        Ok(self.with_audio(model.into_iter().collect()).await?.pop())
    }

    /// Datapoints matching every given filter, newest first.
    pub async fn search_datapoints(
        &self,
        organization_id: Uuid,
        query: &DatapointQuery,
    ) -> Result<Vec<DatapointView>, Error> {
        let mut condition =
            Condition::all().add(datapoint::Column::OrganizationId.eq(organization_id.to_string()));
        if let Some(project_id) = query.project_id {
            condition = condition.add(datapoint::Column::ProjectId.eq(project_id.to_string()));
        }
        if let Some(token) = &query.context_token {
            condition = condition.add(datapoint::Column::ContextToken.eq(token.clone()));
        }
        if let Some(call_id) = &query.call_id {
            condition = condition.add(datapoint::Column::CallId.eq(call_id.clone()));
        }
        if let Some(source) = query.source {
            condition = condition.add(datapoint::Column::Source.eq(source.as_str()));
        }
        if let Some(provider) = &query.provider {
            condition = condition.add(datapoint::Column::Provider.eq(provider.clone()));
        }
        if !query.tags_any.is_empty() {
            let tagged = Query::select()
                .column(datapoint_tag::Column::DatapointId)
                .from(datapoint_tag::Entity)
                .and_where(datapoint_tag::Column::Tag.is_in(query.tags_any.clone()))
                .to_owned();
            condition = condition.add(datapoint::Column::Id.in_subquery(tagged));
        }
        for tag in &query.tags_all {
            let tagged = Query::select()
                .column(datapoint_tag::Column::DatapointId)
                .from(datapoint_tag::Entity)
                .and_where(datapoint_tag::Column::Tag.eq(tag.clone()))
                .to_owned();
            condition = condition.add(datapoint::Column::Id.in_subquery(tagged));
        }
        for (key, value) in &query.metadata_equals {
            let matching = Query::select()
                .column(datapoint_metadata::Column::DatapointId)
                .from(datapoint_metadata::Entity)
                .and_where(datapoint_metadata::Column::Key.eq(key.clone()))
                .and_where(datapoint_metadata::Column::Value.eq(value.clone()))
                .to_owned();
            condition = condition.add(datapoint::Column::Id.in_subquery(matching));
        }
        if let Some(from) = query.from {
            condition = condition.add(datapoint::Column::OccurredAtMs.gte(to_millis(from)));
        }
        if let Some(to) = query.to {
            condition = condition.add(datapoint::Column::OccurredAtMs.lte(to_millis(to)));
        }
        if let Some(text) = query.text_contains.as_deref().filter(|text| !text.is_empty()) {
            let escaped =
                text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            condition = condition.add(
                Expr::col(datapoint::Column::TranscriptSearch)
                    .like(sea_orm::sea_query::LikeExpr::new(format!("%{escaped}%")).escape('\\')),
            );
        }
        if let Some(before) = query.before {
            condition = condition.add(datapoint::Column::Id.lt(before.to_string()));
        }
        let models = datapoint::Entity::find()
            .filter(condition)
            .order_by_desc(datapoint::Column::Id)
            .offset(u64::try_from(query.offset).unwrap_or(0))
            .limit(u64::try_from(query.page_size).unwrap_or(u64::MAX))
            .all(&self.db)
            .await
            .map_err(db_error("searching datapoints"))?;
        self.with_audio(models).await
    }

    async fn with_audio(&self, models: Vec<datapoint::Model>) -> Result<Vec<DatapointView>, Error> {
        let audio_ids: Vec<String> =
            models.iter().filter_map(|model| model.audio_id.clone()).collect();
        let audio = self.get_audio_objects(audio_ids).await?;
        models
            .into_iter()
            .map(|model| {
                let datapoint = datapoint_from_model(model)?;
                let audio = datapoint
                    .audio_id
                    .and_then(|id| audio.iter().find(|object| object.id == id).cloned());
                Ok(DatapointView { datapoint, audio })
            })
            .collect()
    }
}

async fn replace_search_rows(
    connection: &impl ConnectionTrait,
    datapoint: &Datapoint,
    context: &'static str,
) -> Result<(), Error> {
    let id = datapoint.id.to_string();
    let project_id = datapoint.project_id.to_string();
    datapoint_tag::Entity::delete_many()
        .filter(datapoint_tag::Column::DatapointId.eq(id.clone()))
        .exec(connection)
        .await
        .map_err(db_error(context))?;
    datapoint_metadata::Entity::delete_many()
        .filter(datapoint_metadata::Column::DatapointId.eq(id.clone()))
        .exec(connection)
        .await
        .map_err(db_error(context))?;
    for chunk in datapoint.tags.chunks(INSERT_CHUNK_ROWS) {
        let rows = chunk.iter().map(|tag| datapoint_tag::ActiveModel {
            datapoint_id: Set(id.clone()),
            project_id: Set(project_id.clone()),
            tag: Set(tag.clone()),
        });
        datapoint_tag::Entity::insert_many(rows)
            .exec_without_returning(connection)
            .await
            .map_err(db_error(context))?;
    }
    let pairs: Vec<(String, String)> = datapoint
        .metadata
        .iter()
        .filter_map(|(key, value)| metadata_filter_text(value).map(|text| (key.clone(), text)))
        .collect();
    for chunk in pairs.chunks(INSERT_CHUNK_ROWS) {
        let rows = chunk.iter().map(|(key, value)| datapoint_metadata::ActiveModel {
            datapoint_id: Set(id.clone()),
            project_id: Set(project_id.clone()),
            key: Set(key.clone()),
            value: Set(value.clone()),
        });
        datapoint_metadata::Entity::insert_many(rows)
            .exec_without_returning(connection)
            .await
            .map_err(db_error(context))?;
    }
    Ok(())
}

/// Rows of one multi-row INSERT: four parameters each stay far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters, whatever a caller passes.
const INSERT_CHUNK_ROWS: usize = 500;

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|error| Error::internal("encoding a datapoint", error))
}

fn datapoint_active_model(datapoint: &Datapoint) -> Result<datapoint::ActiveModel, Error> {
    Ok(datapoint::ActiveModel {
        id: Set(datapoint.id.to_string()),
        organization_id: Set(datapoint.organization_id.to_string()),
        project_id: Set(datapoint.project_id.to_string()),
        provider: Set(datapoint.provider.clone()),
        call_id: Set(datapoint.call_id.clone()),
        context_token: Set(datapoint.context_token.clone()),
        source: Set(datapoint.source.as_str().to_owned()),
        transcript_source: Set(datapoint.transcript_source.as_str().to_owned()),
        speaker_labels_estimated: Set(datapoint.speaker_labels_estimated),
        turns_json: Set(to_json(&datapoint.turns)?),
        transcript_search: Set(datapoint.transcript_search_text()),
        audio_id: Set(datapoint.audio_id.map(|id| id.to_string())),
        started_at_ms: Set(datapoint.started_at.map(to_millis)),
        ended_at_ms: Set(datapoint.ended_at.map(to_millis)),
        duration_ms: Set(datapoint.duration_ms),
        occurred_at_ms: Set(to_millis(datapoint.occurred_at())),
        from_number: Set(datapoint.from_number.clone()),
        to_number: Set(datapoint.to_number.clone()),
        direction: Set(datapoint.direction.clone()),
        analysis_json: Set(to_json(&datapoint.analysis)?),
        cost_usd: Set(datapoint.analysis.cost_usd),
        tags_json: Set(to_json(&datapoint.tags)?),
        metadata_json: Set(to_json(&datapoint.metadata)?),
        metrics_json: Set(to_json(&datapoint.metrics)?),
        created_at_ms: Set(to_millis(datapoint.created_at)),
        updated_at_ms: Set(to_millis(datapoint.updated_at)),
    })
}

fn datapoint_from_model(model: datapoint::Model) -> Result<Datapoint, Error> {
    let context = "reading a datapoint";
    Ok(Datapoint {
        id: parse_uuid(context, &model.id)?,
        organization_id: parse_uuid(context, &model.organization_id)?,
        project_id: parse_uuid(context, &model.project_id)?,
        provider: model.provider,
        call_id: model.call_id,
        context_token: model.context_token,
        source: Source::parse(&model.source)
            .ok_or_else(|| Error::internal(context, "unknown source"))?,
        transcript_source: TranscriptSource::parse(&model.transcript_source)
            .ok_or_else(|| Error::internal(context, "unknown transcript source"))?,
        speaker_labels_estimated: model.speaker_labels_estimated,
        turns: from_json(&model.turns_json)?,
        audio_id: model.audio_id.as_deref().map(|id| parse_uuid(context, id)).transpose()?,
        started_at: model.started_at_ms.map(from_millis),
        ended_at: model.ended_at_ms.map(from_millis),
        duration_ms: model.duration_ms,
        from_number: model.from_number,
        to_number: model.to_number,
        direction: model.direction,
        analysis: from_json(&model.analysis_json)?,
        tags: from_json(&model.tags_json)?,
        metadata: from_json(&model.metadata_json)?,
        metrics: from_json(&model.metrics_json)?,
        created_at: from_millis(model.created_at_ms),
        updated_at: from_millis(model.updated_at_ms),
    })
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|error| Error::internal("reading a datapoint", error))
}
