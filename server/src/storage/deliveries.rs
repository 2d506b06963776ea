//! The webhook delivery log.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entities::webhook_delivery;
use super::{Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::model::deliveries::{
    DeliveryVerdict, NewDelivery, StoredDelivery, StoredRequest, WebhookDelivery,
};
use crate::model::ingest::IngestOutcome;

/// Inserts deliveries in the caller's transaction, a multi-row statement per chunk.
pub(super) async fn insert_deliveries(
    connection: &impl ConnectionTrait,
    deliveries: Vec<webhook_delivery::ActiveModel>,
) -> Result<(), Error> {
    let mut deliveries = deliveries.into_iter().peekable();
    while deliveries.peek().is_some() {
        let chunk: Vec<_> = deliveries.by_ref().take(INSERT_CHUNK_ROWS).collect();
        webhook_delivery::Entity::insert_many(chunk)
            .exec_without_returning(connection)
            .await
            .map_err(db_error("recording webhook deliveries"))?;
    }
    Ok(())
}

/// Rows of one multi-row INSERT (16 parameters each).
const INSERT_CHUNK_ROWS: usize = 200;

/// The row of `delivery`. When the same write stored a call, `outcome` decides the verdict,
/// status and ingest id.
pub(super) fn delivery_model(
    delivery: &NewDelivery,
    outcome: Option<IngestOutcome>,
) -> Result<webhook_delivery::ActiveModel, Error> {
    let context = "recording a webhook delivery";
    let record = &delivery.record;
    let (verdict, http_status, ingest_id) = match outcome {
        Some(IngestOutcome::Created(id)) => (DeliveryVerdict::Accepted, 202, Some(id)),
        Some(IngestOutcome::Duplicate(id)) => (DeliveryVerdict::Duplicate, 200, Some(id)),
        None => (record.verdict, record.http_status, record.ingest_id),
    };
    let request_json = delivery
        .request
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|error| Error::internal(context, error))?;
    Ok(webhook_delivery::ActiveModel {
        id: Set(record.id.to_string()),
        organization_id: Set(delivery.organization_id.to_string()),
        project_id: Set(delivery.project_id.to_string()),
        integration_id: Set(record.integration_id.to_string()),
        received_at_ms: Set(to_millis(record.received_at)),
        verdict: Set(verdict.as_str().to_owned()),
        http_status: Set(i32::from(http_status)),
        event_type: Set(record.event_type.clone()),
        call_id: Set(record.call_id.clone()),
        body_sha256: Set(record.body_sha256.clone()),
        error: Set(record.error.clone()),
        error_message: Set(record.error_message.clone()),
        ingest_id: Set(ingest_id.map(|id| id.to_string())),
        authenticated: Set(record.authenticated),
        request_json: Set(request_json),
        body: Set(delivery.body.as_deref().map(<[u8]>::to_vec)),
    })
}

/// The columns a listing reads: all but the request and body.
const LISTED: [webhook_delivery::Column; 14] = [
    webhook_delivery::Column::Id,
    webhook_delivery::Column::OrganizationId,
    webhook_delivery::Column::ProjectId,
    webhook_delivery::Column::IntegrationId,
    webhook_delivery::Column::ReceivedAtMs,
    webhook_delivery::Column::Verdict,
    webhook_delivery::Column::HttpStatus,
    webhook_delivery::Column::EventType,
    webhook_delivery::Column::CallId,
    webhook_delivery::Column::BodySha256,
    webhook_delivery::Column::Error,
    webhook_delivery::Column::ErrorMessage,
    webhook_delivery::Column::IngestId,
    webhook_delivery::Column::Authenticated,
];

impl Storage {
    /// Deliveries of an integration, newest first, before the delivery `before`.
    pub async fn list_webhook_deliveries(
        &self,
        integration_id: Uuid,
        verdict: Option<DeliveryVerdict>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        let context = "listing webhook deliveries";
        let mut query = webhook_delivery::Entity::find()
            .select_only()
            .columns(LISTED)
            .expr_as(Expr::col(webhook_delivery::Column::Body).is_not_null(), "replayable")
            .filter(webhook_delivery::Column::IntegrationId.eq(integration_id.to_string()));
        if let Some(verdict) = verdict {
            query = query.filter(webhook_delivery::Column::Verdict.eq(verdict.as_str()));
        }
        if let Some(before) = before {
            query = query.filter(webhook_delivery::Column::Id.lt(before.to_string()));
        }
        let rows = query
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .into_model::<ListedRow>()
            .all(&self.db)
            .await
            .map_err(db_error(context))?;
        rows.into_iter().map(|row| row.into_delivery(context)).collect()
    }

    pub async fn get_webhook_delivery(
        &self,
        integration_id: Uuid,
        id: Uuid,
    ) -> Result<Option<StoredDelivery>, Error> {
        let context = "reading a webhook delivery";
        let Some(model) = webhook_delivery::Entity::find_by_id(id.to_string())
            .filter(webhook_delivery::Column::IntegrationId.eq(integration_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error(context))?
        else {
            return Ok(None);
        };
        let request = model
            .request_json
            .as_deref()
            .map(serde_json::from_str::<StoredRequest>)
            .transpose()
            .map_err(|error| Error::internal(context, error))?;
        let body = model.body.clone();
        let row = ListedRow {
            id: model.id,
            integration_id: model.integration_id,
            received_at_ms: model.received_at_ms,
            verdict: model.verdict,
            http_status: model.http_status,
            event_type: model.event_type,
            call_id: model.call_id,
            body_sha256: model.body_sha256,
            error: model.error,
            error_message: model.error_message,
            ingest_id: model.ingest_id,
            authenticated: model.authenticated,
            replayable: body.is_some(),
        };
        Ok(Some(StoredDelivery { delivery: row.into_delivery(context)?, request, body }))
    }

    /// Clears request and body of deliveries received before `bodies_before`, and deletes
    /// deliveries received before `deliveries_before`.
    pub async fn prune_webhook_deliveries(
        &self,
        bodies_before: DateTime<Utc>,
        deliveries_before: DateTime<Utc>,
    ) -> Result<(u64, u64), Error> {
        let context = "pruning webhook deliveries";
        let deleted = webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::ReceivedAtMs.lt(to_millis(deliveries_before)))
            .exec(&self.db)
            .await
            .map_err(db_error(context))?
            .rows_affected;
        let cleared = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Body, Expr::value(Option::<Vec<u8>>::None))
            .col_expr(webhook_delivery::Column::RequestJson, Expr::value(Option::<String>::None))
            .filter(webhook_delivery::Column::ReceivedAtMs.lt(to_millis(bodies_before)))
            .filter(webhook_delivery::Column::Body.is_not_null())
            .exec(&self.db)
            .await
            .map_err(db_error(context))?
            .rows_affected;
        Ok((cleared, deleted))
    }
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct ListedRow {
    id: String,
    integration_id: String,
    received_at_ms: i64,
    verdict: String,
    http_status: i32,
    event_type: String,
    call_id: String,
    body_sha256: String,
    error: String,
    error_message: String,
    ingest_id: Option<String>,
    authenticated: bool,
    replayable: bool,
}

impl ListedRow {
    fn into_delivery(self, context: &'static str) -> Result<WebhookDelivery, Error> {
        Ok(WebhookDelivery {
            id: parse_uuid(context, &self.id)?,
            integration_id: parse_uuid(context, &self.integration_id)?,
            received_at: from_millis(self.received_at_ms),
            verdict: DeliveryVerdict::parse(&self.verdict).ok_or_else(|| {
                Error::internal(context, format!("unknown verdict {:?}", self.verdict))
            })?,
            http_status: u16::try_from(self.http_status).unwrap_or_default(),
            event_type: self.event_type,
            call_id: self.call_id,
            body_sha256: self.body_sha256,
            error: self.error,
            error_message: self.error_message,
            ingest_id: self.ingest_id.as_deref().map(|id| parse_uuid(context, id)).transpose()?,
            authenticated: self.authenticated,
            replayable: self.replayable,
        })
    }
}
