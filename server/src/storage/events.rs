//! The outbox of outbound events (m0019): endpoints, events written in the transaction of what
//! caused them (`events_into`, beside the monitors' `evaluate_into`), their deliveries
//! taken when due in one statement per batch, and the log of attempts.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::entities::{alert_cooldown, event, event_attempt, event_delivery, event_endpoint};
use super::{Batch, Storage, db_error, parse_uuid};
use crate::clock::{from_millis, to_millis};
use crate::error::Error;
use crate::model::datapoints::Datapoint;
use crate::model::events::{self, AttemptFilter, AttemptRecord, Endpoint, EventFilter, Replay};

/// A sealed value as `event_endpoints` keeps it: the master key's id and the sealed bytes in
/// base64; `expires_at_ms` set on a secret replaced by a rotation (valid until then).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub key_id: String,
    pub sealed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

impl StoredSecret {
    /// `sealed` as stored, valid until `expires_at_ms` (none: the current one).
    pub fn of(sealed: crate::crypto::SealedSecret, expires_at_ms: Option<i64>) -> Self {
        Self {
            key_id: sealed.key_id,
            sealed: data_encoding::BASE64.encode(&sealed.ciphertext),
            expires_at_ms,
        }
    }

    /// The sealed value, to open.
    pub fn sealed(&self) -> Result<crate::crypto::SealedSecret, Error> {
        Ok(crate::crypto::SealedSecret {
            key_id: self.key_id.clone(),
            ciphertext: data_encoding::BASE64
                .decode(self.sealed.as_bytes())
                .map_err(|error| Error::internal("reading a sealed event secret", error))?,
        })
    }
}

/// An endpoint's static headers: their names, and their values as one sealed JSON object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHeaders {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<StoredSecret>,
}

/// An endpoint with what signs and accompanies its events, still sealed.
#[derive(Clone, Debug)]
pub struct SealedEndpoint {
    pub endpoint: Endpoint,
    pub secrets: Vec<StoredSecret>,
    pub headers: StoredHeaders,
}

/// A delivery taken to be attempted now.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub event_id: String,
    pub endpoint_id: Uuid,
    pub organization_id: Uuid,
    /// Attempts made before this one.
    pub attempts: u32,
    pub event_type: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// What an attempt came to, to be recorded.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub delivery: DueDelivery,
    pub attempted_at: DateTime<Utc>,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    pub response_excerpt: String,
    pub error: String,
    pub next: NextStep,
}

/// What follows an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum NextStep {
    Delivered,
    /// Due again at this time.
    RetryAt(DateTime<Utc>),
    /// The schedule is over: the delivery failed.
    GiveUp,
    /// The endpoint is disabled with this reason (`gone`, `failing`): this delivery and its
    /// other pending ones fail, and the organization's other endpoints get `endpoint.disabled`.
    Disable(&'static str),
}

/// What a batch of attempts changes in one endpoint's counters.
#[derive(Debug, Default)]
struct EndpointTally {
    sent: i64,
    failed: i64,
    last_success: Option<DateTime<Utc>>,
    last_failure: Option<DateTime<Utc>>,
    /// The first failure after the batch's last success (after none: the batch's first).
    failing_from: Option<DateTime<Utc>>,
}

impl EndpointTally {
    /// Each endpoint's tally of `outcomes`, taken in the order they were attempted.
    fn of(outcomes: &[AttemptOutcome]) -> BTreeMap<Uuid, Self> {
        let mut ordered: Vec<&AttemptOutcome> = outcomes.iter().collect();
        ordered.sort_by_key(|outcome| outcome.attempted_at);
        let mut tallies: BTreeMap<Uuid, Self> = BTreeMap::new();
        for outcome in ordered {
            let tally = tallies.entry(outcome.delivery.endpoint_id).or_default();
            let at = outcome.attempted_at;
            if outcome.next == NextStep::Delivered {
                tally.sent += 1;
                tally.last_success = Some(at);
                tally.failing_from = None;
            } else {
                tally.failed += 1;
                tally.last_failure = Some(at);
                tally.failing_from.get_or_insert(at);
            }
        }
        tallies
    }

    /// The endpoint's row updated by the tally: a success ends a failing streak (one failing
    /// since a later failure of the batch, if any); failures alone start one unless it runs.
    fn update(&self, endpoint_id: Uuid) -> sea_orm::sea_query::UpdateStatement {
        use event_endpoint::Column;
        let mut update = Query::update()
            .table(event_endpoint::Entity)
            .value(Column::Sent, Expr::col(Column::Sent).add(self.sent))
            .value(Column::Failed, Expr::col(Column::Failed).add(self.failed))
            .and_where(Column::Id.eq(endpoint_id.to_string()))
            .to_owned();
        if let Some(at) = self.last_success {
            update
                .value(Column::LastSuccessAtMs, to_millis(at))
                .value(Column::FailingSinceMs, self.failing_from.map(to_millis));
        } else if let Some(at) = self.failing_from {
            update.value(
                Column::FailingSinceMs,
                sea_orm::sea_query::Func::coalesce([
                    Expr::col(Column::FailingSinceMs),
                    Expr::val(to_millis(at)),
                ]),
            );
        }
        if let Some(at) = self.last_failure {
            update.value(Column::LastFailureAtMs, to_millis(at));
        }
        update
    }
}

/// An attempt that got no 2xx answer, word for word as `event_attempts_failed_by_endpoint`
/// (m0020) states it, so that index serves it.
const FAILED_ATTEMPT: &str = "coalesce(http_status, 0) NOT BETWEEN 200 AND 299";

const PENDING: &str = "pending";
const DELIVERED: &str = "delivered";
const FAILED: &str = "failed";

impl Storage {
    pub async fn insert_event_endpoint(&self, endpoint: &SealedEndpoint) -> Result<(), Error> {
        let context = "creating an event endpoint";
        let model = endpoint_model(endpoint)?;
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        event_endpoint::Entity::insert(model)
            .exec_without_returning(&transaction)
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// The organization's endpoint `id`, with its sealed secrets and headers.
    pub async fn event_endpoint(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Result<Option<SealedEndpoint>, Error> {
        event_endpoint::Entity::find_by_id(id.to_string())
            .filter(event_endpoint::Column::OrganizationId.eq(organization_id.to_string()))
            .one(&self.db)
            .await
            .map_err(db_error("reading an event endpoint"))?
            .map(sealed_endpoint)
            .transpose()
    }

    /// The organization's endpoints, oldest first.
    pub async fn event_endpoints(
        &self,
        organization_id: Uuid,
    ) -> Result<Vec<SealedEndpoint>, Error> {
        event_endpoint::Entity::find()
            .filter(event_endpoint::Column::OrganizationId.eq(organization_id.to_string()))
            .order_by_asc(event_endpoint::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error("listing event endpoints"))?
            .into_iter()
            .map(sealed_endpoint)
            .collect()
    }

    /// Endpoints by id (any organization's: for the sender, which took their deliveries).
    pub async fn event_endpoints_by_id(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, SealedEndpoint>, Error> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
            for model in event_endpoint::Entity::find()
                .filter(event_endpoint::Column::Id.is_in(chunk.iter().map(Uuid::to_string)))
                .all(&self.db)
                .await
                .map_err(db_error("reading event endpoints"))?
            {
                let sealed = sealed_endpoint(model)?;
                found.insert(sealed.endpoint.id, sealed);
            }
        }
        Ok(found)
    }

    /// Deletes the endpoint; its pending deliveries end as failed. False when there is none.
    pub async fn delete_event_endpoint(
        &self,
        organization_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let context = "deleting an event endpoint";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let deleted = event_endpoint::Entity::delete_many()
            .filter(event_endpoint::Column::Id.eq(id.to_string()))
            .filter(event_endpoint::Column::OrganizationId.eq(organization_id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?
            .rows_affected
            > 0;
        if deleted {
            let backend = transaction.get_database_backend();
            let statement = fail_pending(id, "the endpoint was deleted", now);
            transaction.execute_raw(backend.build(&statement)).await.map_err(db_error(context))?;
            alert_cooldown::Entity::delete_many()
                .filter(alert_cooldown::Column::EndpointId.eq(id.to_string()))
                .exec(&transaction)
                .await
                .map_err(db_error(context))?;
        }
        transaction.commit().await.map_err(db_error(context))?;
        Ok(deleted)
    }

    /// Writes what an update may change (not the secrets nor the counters; whether it is
    /// enabled only when `sets_enabled`: the sender may be disabling it meanwhile). An endpoint
    /// disabled here has its pending deliveries failed in the same transaction. False when there
    /// is none.
    pub async fn update_event_endpoint(
        &self,
        sealed: &SealedEndpoint,
        sets_enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        use event_endpoint::Column;
        let context = "updating an event endpoint";
        let endpoint = &sealed.endpoint;
        let limit =
            endpoint.rate_limit_per_second.map(|limit| i32::try_from(limit).unwrap_or(i32::MAX));
        let mut update = event_endpoint::Entity::update_many()
            .col_expr(Column::Url, Expr::value(endpoint.url.clone()))
            .col_expr(Column::Description, Expr::value(endpoint.description.clone()))
            .col_expr(Column::EventTypesJson, Expr::value(to_json(&endpoint.event_types)?))
            .col_expr(Column::FilterJson, Expr::value(to_json(&endpoint.filter)?))
            .col_expr(Column::IncludeTranscript, Expr::value(endpoint.include_transcript))
            .col_expr(Column::RateLimitPerSecond, Expr::value(limit))
            .col_expr(Column::HeadersJson, Expr::value(to_json(&sealed.headers)?))
            .col_expr(
                Column::AlertCooldownSeconds,
                Expr::value(i32::try_from(endpoint.alert_cooldown_seconds).unwrap_or(i32::MAX)),
            )
            .col_expr(Column::UpdatedAtMs, Expr::value(to_millis(now)));
        if sets_enabled {
            update = update
                .col_expr(Column::Enabled, Expr::value(endpoint.enabled))
                .col_expr(Column::DisabledReason, Expr::value(endpoint.disabled_reason.clone()))
                .col_expr(
                    Column::FailingSinceMs,
                    Expr::value(endpoint.failing_since.map(to_millis)),
                );
        }
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let changed = update
            .filter(Column::Id.eq(endpoint.id.to_string()))
            .filter(Column::OrganizationId.eq(endpoint.organization_id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?
            .rows_affected
            > 0;
        if changed && sets_enabled && !endpoint.enabled {
            let backend = transaction.get_database_backend();
            let statement = fail_pending(endpoint.id, "the endpoint was disabled", now);
            transaction.execute_raw(backend.build(&statement)).await.map_err(db_error(context))?;
        }
        transaction.commit().await.map_err(db_error(context))?;
        Ok(changed)
    }

    /// Writes an `endpoint.test` event with one delivery, to `endpoint`, due now. Returns the
    /// event's id.
    pub async fn insert_test_event(
        &self,
        endpoint: &Endpoint,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let context = "sending a test event";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let mut batch = Batch::new(transaction.get_database_backend());
        let data = events::endpoint_test(endpoint.id);
        let id = emit_into(
            &mut batch,
            endpoint.organization_id,
            events::ENDPOINT_TEST,
            &data,
            &[endpoint],
            now,
        )?
        .ok_or_else(|| Error::internal(context, "no event written"))?;
        batch.execute(&transaction, context).await?;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(id)
    }

    /// Queues the organization's deliveries to `endpoint_id` that `replay` names again: due
    /// now, with a fresh schedule (the event, and so its webhook-id, unchanged). One statement
    /// by the endpoint's deliveries (`event_deliveries_by_endpoint`: an event's key, or a window
    /// as a range of time-ordered event ids). Returns how many.
    pub async fn replay_event_deliveries(
        &self,
        organization_id: Uuid,
        endpoint_id: Uuid,
        replay: &Replay,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        use event_delivery::Column;
        let context = "replaying event deliveries";
        let now_ms = to_millis(now);
        let mut update = Query::update();
        update
            .table(event_delivery::Entity)
            .value(Column::State, PENDING)
            .value(Column::Attempts, 0)
            .value(Column::NextAttemptAtMs, now_ms)
            .value(Column::LastError, "")
            .value(Column::UpdatedAtMs, now_ms)
            .and_where(Column::EndpointId.eq(endpoint_id.to_string()))
            .and_where(Column::OrganizationId.eq(organization_id.to_string()));
        match replay {
            Replay::Event(event_id) => {
                update
                    .and_where(Column::EventId.eq(event_id.clone()))
                    .and_where(Column::State.ne(PENDING));
            }
            Replay::FailedBetween(from, to) => {
                update
                    .and_where(Column::EventId.gte(events::first_event_id_at(*from)))
                    .and_where(Column::EventId.lt(events::first_event_id_at(*to)))
                    .and_where(Column::State.eq(FAILED));
            }
        }
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let backend = transaction.get_database_backend();
        let replayed = transaction
            .execute_raw(backend.build(&update))
            .await
            .map_err(db_error(context))?
            .rows_affected();
        transaction.commit().await.map_err(db_error(context))?;
        Ok(replayed)
    }

    /// Replaces the endpoint's secrets (a rotation). False when there is none.
    pub async fn set_event_endpoint_secrets(
        &self,
        organization_id: Uuid,
        id: Uuid,
        secrets: &[StoredSecret],
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let context = "rotating an event endpoint's secret";
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let changed = event_endpoint::Entity::update_many()
            .col_expr(event_endpoint::Column::SecretsJson, Expr::value(to_json(secrets)?))
            .col_expr(event_endpoint::Column::UpdatedAtMs, Expr::value(to_millis(now)))
            .filter(event_endpoint::Column::Id.eq(id.to_string()))
            .filter(event_endpoint::Column::OrganizationId.eq(organization_id.to_string()))
            .exec(&transaction)
            .await
            .map_err(db_error(context))?
            .rows_affected
            > 0;
        transaction.commit().await.map_err(db_error(context))?;
        Ok(changed)
    }

    /// Takes up to `limit` deliveries due at `now`, in due order, and moves each one's due time
    /// to `lease_until`: a sender that dies before recording the attempt leaves it due again
    /// then. One statement by the partial index of pending deliveries (no sort of the backlog);
    /// on PostgreSQL, rows another sender holds are skipped.
    pub async fn take_due_event_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, Error> {
        let context = "taking due event deliveries";
        let backend = self.db.get_database_backend();
        let lock = if backend == DbBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let (now_ms, lease_ms) = (to_millis(now), to_millis(lease_until));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "UPDATE event_deliveries SET next_attempt_at_ms = {p1}, updated_at_ms = {p2} \
             WHERE (event_id, endpoint_id) IN (SELECT event_id, endpoint_id FROM event_deliveries \
             WHERE state = 'pending' AND next_attempt_at_ms <= {p2} \
             ORDER BY next_attempt_at_ms LIMIT {p3}{lock}) \
             RETURNING event_id, endpoint_id, organization_id, attempts",
            p1 = placeholder(backend, 1),
            p2 = placeholder(backend, 2),
            p3 = placeholder(backend, 3),
        );
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let rows = transaction
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                sql,
                [lease_ms.into(), now_ms.into(), limit.into()],
            ))
            .await
            .map_err(db_error(context))?;
        transaction.commit().await.map_err(db_error(context))?;
        let mut taken = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |column: &str| -> Result<String, Error> {
                row.try_get::<String>("", column).map_err(|error| Error::internal(context, error))
            };
            let attempts: i32 =
                row.try_get("", "attempts").map_err(|error| Error::internal(context, error))?;
            taken.push((
                get("event_id")?,
                parse_uuid(context, &get("endpoint_id")?)?,
                parse_uuid(context, &get("organization_id")?)?,
                u32::try_from(attempts).unwrap_or(0),
            ));
        }
        let mut bodies: HashMap<String, event::Model> = HashMap::new();
        let ids: Vec<String> = taken.iter().map(|(id, ..)| id.clone()).collect();
        for chunk in ids.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
            for model in event::Entity::find()
                .filter(event::Column::Id.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await
                .map_err(db_error(context))?
            {
                bodies.insert(model.id.clone(), model);
            }
        }
        Ok(taken
            .into_iter()
            .filter_map(|(event_id, endpoint_id, organization_id, attempts)| {
                let model = bodies.get(&event_id)?;
                Some(DueDelivery {
                    event_id,
                    endpoint_id,
                    organization_id,
                    attempts,
                    event_type: model.event_type.clone(),
                    body: model.body.clone(),
                    created_at: from_millis(model.created_at_ms),
                })
            })
            .collect())
    }

    /// Records attempts and what follows each, in one transaction: the attempt log, the
    /// deliveries' state, each endpoint's counters (one update per endpoint), and for an
    /// endpoint disabled, its other pending deliveries failed and `endpoint.disabled` for the
    /// organization's other endpoints. `deferred` deliveries were not attempted (their
    /// endpoint's rate limit): they are due again at the time given, their attempts unchanged.
    pub async fn record_event_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        deferred: &[(DueDelivery, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let context = "recording event attempts";
        if outcomes.is_empty() && deferred.is_empty() {
            return Ok(());
        }
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let mut batch = Batch::new(transaction.get_database_backend());
        let attempts: Vec<event_attempt::ActiveModel> = outcomes
            .iter()
            .map(|outcome| event_attempt::ActiveModel {
                id: Set(events::uuid_at(outcome.attempted_at).to_string()),
                organization_id: Set(outcome.delivery.organization_id.to_string()),
                event_id: Set(outcome.delivery.event_id.clone()),
                endpoint_id: Set(outcome.delivery.endpoint_id.to_string()),
                event_type: Set(outcome.delivery.event_type.clone()),
                attempted_at_ms: Set(to_millis(outcome.attempted_at)),
                http_status: Set(outcome.http_status.map(i32::from)),
                latency_ms: Set(i64::try_from(outcome.latency_ms).unwrap_or(i64::MAX)),
                response_excerpt: Set(outcome.response_excerpt.clone()),
                error: Set(outcome.error.clone()),
            })
            .collect();
        if !attempts.is_empty() {
            batch.insert_rows(attempts, None);
        }
        let delivery = |delivery: &DueDelivery| {
            Query::update()
                .table(event_delivery::Entity)
                .value(event_delivery::Column::UpdatedAtMs, to_millis(now))
                .and_where(event_delivery::Column::EventId.eq(delivery.event_id.clone()))
                .and_where(event_delivery::Column::EndpointId.eq(delivery.endpoint_id.to_string()))
                .to_owned()
        };
        for (deferred, due_at) in deferred {
            batch.push(
                &delivery(deferred)
                    .value(event_delivery::Column::NextAttemptAtMs, to_millis(*due_at))
                    .to_owned(),
            );
        }
        let mut disabled: Vec<(Uuid, Uuid, &'static str)> = Vec::new();
        for outcome in outcomes {
            let (state, next_ms) = match &outcome.next {
                NextStep::Delivered => (DELIVERED, to_millis(outcome.attempted_at)),
                NextStep::RetryAt(at) => (PENDING, to_millis(*at)),
                NextStep::GiveUp | NextStep::Disable(_) => {
                    (FAILED, to_millis(outcome.attempted_at))
                }
            };
            batch.push(
                &delivery(&outcome.delivery)
                    .value(event_delivery::Column::State, state)
                    .value(
                        event_delivery::Column::Attempts,
                        i64::from(outcome.delivery.attempts) + 1,
                    )
                    .value(event_delivery::Column::NextAttemptAtMs, next_ms)
                    .value(event_delivery::Column::LastStatus, outcome.http_status.map(i32::from))
                    .value(event_delivery::Column::LastError, outcome.error.clone())
                    .to_owned(),
            );
            if let NextStep::Disable(reason) = outcome.next {
                disabled.push((
                    outcome.delivery.organization_id,
                    outcome.delivery.endpoint_id,
                    reason,
                ));
            }
        }
        for (endpoint_id, tally) in EndpointTally::of(outcomes) {
            batch.push(&tally.update(endpoint_id));
        }
        // Two deliveries to one gone endpoint in a batch disable it once.
        disabled.sort_unstable();
        disabled.dedup_by_key(|(_, endpoint_id, _)| *endpoint_id);
        let mut organizations: Vec<Uuid> =
            disabled.iter().map(|(organization_id, ..)| *organization_id).collect();
        organizations.sort_unstable();
        organizations.dedup();
        let others = enabled_endpoints(&transaction, &organizations, context).await?;
        for (organization_id, endpoint_id, reason) in &disabled {
            batch.push(
                &Query::update()
                    .table(event_endpoint::Entity)
                    .value(event_endpoint::Column::Enabled, false)
                    .value(event_endpoint::Column::DisabledReason, *reason)
                    .value(event_endpoint::Column::UpdatedAtMs, to_millis(now))
                    .and_where(event_endpoint::Column::Id.eq(endpoint_id.to_string()))
                    .to_owned(),
            );
            batch.push(&fail_pending(*endpoint_id, "the endpoint was disabled", now));
            let data = serde_json::json!({"endpoint_id": endpoint_id, "reason": reason});
            let receivers: Vec<&Endpoint> = others
                .iter()
                .filter(|endpoint| {
                    endpoint.organization_id == *organization_id
                        && endpoint.subscribes(events::ENDPOINT_DISABLED)
                        && !disabled.iter().any(|(_, gone, _)| *gone == endpoint.id)
                })
                .collect();
            emit_into(
                &mut batch,
                *organization_id,
                events::ENDPOINT_DISABLED,
                &data,
                &receivers,
                now,
            )?;
        }
        batch.execute(&transaction, context).await?;
        transaction.commit().await.map_err(db_error(context))
    }

    /// Removes up to `limit` events created before `cutoff` that no delivery still waits on,
    /// with their deliveries, and up to `limit` attempts made before it: ranges of their
    /// time-ordered keys. Returns how many events and attempts went.
    pub async fn prune_events(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> Result<(u64, u64), Error> {
        let context = "pruning events";
        let backend = self.db.get_database_backend();
        let first_kept = events::uuid_at(cutoff);
        let event_cutoff = format!("msg_{}", first_kept.simple());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (p1, p2) = (placeholder(backend, 1), placeholder(backend, 2));
        let old_events = format!(
            "SELECT e.id FROM events e WHERE e.id < {p1} AND NOT EXISTS (SELECT 1 FROM \
             event_deliveries d WHERE d.event_id = e.id AND d.state = 'pending') \
             ORDER BY e.id LIMIT {p2}"
        );
        let transaction = self.begin_write().await.map_err(db_error(context))?;
        let run = |sql: String, key: String| {
            sea_orm::Statement::from_sql_and_values(backend, sql, [key.into(), limit.into()])
        };
        let ids: Vec<String> = transaction
            .query_all_raw(run(old_events, event_cutoff))
            .await
            .map_err(db_error(context))?
            .iter()
            .map(|row| row.try_get::<String>("", "id"))
            .collect::<Result<_, _>>()
            .map_err(db_error(context))?;
        for chunk in ids.chunks(super::datapoints::LOOKUP_CHUNK_KEYS) {
            for statement in [
                Query::delete()
                    .from_table(event_delivery::Entity)
                    .and_where(event_delivery::Column::EventId.is_in(chunk.iter().cloned()))
                    .to_owned(),
                Query::delete()
                    .from_table(event::Entity)
                    .and_where(event::Column::Id.is_in(chunk.iter().cloned()))
                    .to_owned(),
            ] {
                transaction
                    .execute_raw(backend.build(&statement))
                    .await
                    .map_err(db_error(context))?;
            }
        }
        let attempts = transaction
            .execute_raw(run(
                format!(
                    "DELETE FROM event_attempts WHERE id IN (SELECT id FROM event_attempts \
                     WHERE id < {p1} ORDER BY id LIMIT {p2})"
                ),
                first_kept.to_string(),
            ))
            .await
            .map_err(db_error(context))?
            .rows_affected();
        transaction.commit().await.map_err(db_error(context))?;
        Ok((ids.len() as u64, attempts))
    }

    /// The attempts to deliver to the organization's endpoint that pass `filter`, newest
    /// first, before `before`.
    pub async fn event_attempts(
        &self,
        organization_id: Uuid,
        endpoint_id: Uuid,
        filter: &AttemptFilter,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, Error> {
        let context = "listing event attempts";
        attempts_query(organization_id, endpoint_id, filter, before, limit)
            .all(&self.db)
            .await
            .map_err(db_error(context))?
            .into_iter()
            .map(|model| {
                Ok(AttemptRecord {
                    id: parse_uuid(context, &model.id)?,
                    event_id: model.event_id,
                    endpoint_id: parse_uuid(context, &model.endpoint_id)?,
                    event_type: model.event_type,
                    attempted_at: from_millis(model.attempted_at_ms),
                    http_status: model.http_status.and_then(|status| u16::try_from(status).ok()),
                    latency_ms: u64::try_from(model.latency_ms).unwrap_or(0),
                    response_excerpt: model.response_excerpt,
                    error: model.error,
                })
            })
            .collect()
    }
}

/// The statement of `Storage::event_attempts`. An event's attempts are few
/// (`event_attempts_by_event`), failures have their own index (m0020), successes are most
/// attempts, found walking the endpoint's (`event_attempts_by_endpoint`).
pub(super) fn attempts_query(
    organization_id: Uuid,
    endpoint_id: Uuid,
    filter: &AttemptFilter,
    before: Option<Uuid>,
    limit: usize,
) -> sea_orm::Select<event_attempt::Entity> {
    let mut query = event_attempt::Entity::find()
        .filter(event_attempt::Column::EndpointId.eq(endpoint_id.to_string()))
        .filter(event_attempt::Column::OrganizationId.eq(organization_id.to_string()));
    if let Some(event_id) = &filter.event_id {
        query = query.filter(event_attempt::Column::EventId.eq(event_id.clone()));
    }
    match filter.succeeded {
        Some(false) => query = query.filter(Expr::cust(FAILED_ATTEMPT)),
        Some(true) => query = query.filter(Expr::cust(FAILED_ATTEMPT).not()),
        None => {}
    }
    if let Some(before) = before {
        query = query.filter(event_attempt::Column::Id.lt(before.to_string()));
    }
    query.order_by_desc(event_attempt::Column::Id).limit(u64::try_from(limit).unwrap_or(u64::MAX))
}

/// Re-seals every endpoint's secrets and headers with `reseal` (given the endpoint and whether
/// the value is its headers), in the caller's transaction; returns how many values changed.
pub(super) async fn reseal_endpoints(
    transaction: &impl ConnectionTrait,
    mut reseal: impl FnMut(
        Uuid,
        bool,
        &crate::crypto::SealedSecret,
    ) -> Result<crate::crypto::SealedSecret, Error>,
) -> Result<usize, Error> {
    let context = "re-sealing event endpoint secrets";
    let mut count = 0;
    let mut again = |endpoint_id: Uuid, headers: bool, value: &StoredSecret| {
        Ok::<_, Error>(StoredSecret::of(
            reseal(endpoint_id, headers, &value.sealed()?)?,
            value.expires_at_ms,
        ))
    };
    for model in event_endpoint::Entity::find().all(transaction).await.map_err(db_error(context))? {
        let id = parse_uuid(context, &model.id)?;
        let secrets: Vec<StoredSecret> = from_json(&model.secrets_json)?;
        let mut headers: StoredHeaders = from_json(&model.headers_json)?;
        let secrets = secrets
            .iter()
            .map(|secret| again(id, false, secret))
            .collect::<Result<Vec<_>, Error>>()?;
        count += secrets.len();
        if let Some(sealed) = &headers.sealed {
            headers.sealed = Some(again(id, true, sealed)?);
            count += 1;
        }
        event_endpoint::Entity::update_many()
            .col_expr(event_endpoint::Column::SecretsJson, Expr::value(to_json(&secrets)?))
            .col_expr(event_endpoint::Column::HeadersJson, Expr::value(to_json(&headers)?))
            .filter(event_endpoint::Column::Id.eq(model.id))
            .exec(transaction)
            .await
            .map_err(db_error(context))?;
    }
    Ok(count)
}

/// Writes, into `batch`, the events of `datapoints` being stored in the same transaction: a
/// `call.processed` for each, and a `check.failed` for each of `failures`, each to the enabled
/// endpoints of its organization that subscribe to its type and whose filter it passes (a
/// filter's monitor applies to `check.failed`), with a delivery per endpoint, due at once. One
/// query for the organizations' endpoints; none enabled, nothing written.
pub(super) async fn events_into(
    connection: &impl ConnectionTrait,
    datapoints: &[&Datapoint],
    failures: &[super::monitors::CheckFailure],
    batch: &mut Batch,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), Error> {
    let mut organizations: Vec<Uuid> =
        datapoints.iter().map(|datapoint| datapoint.organization_id).collect();
    organizations.sort_unstable();
    organizations.dedup();
    let endpoints = enabled_endpoints(connection, &organizations, context).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let receivers = |datapoint: &Datapoint, event_type: &str, monitor_id: Option<Uuid>| {
        endpoints
            .iter()
            .filter(|endpoint| {
                endpoint.organization_id == datapoint.organization_id
                    && endpoint.subscribes(event_type)
                    && endpoint.filter.matches_call(datapoint)
                    && (endpoint.filter.monitor_id.is_none()
                        || endpoint.filter.monitor_id == monitor_id)
            })
            .collect::<Vec<&Endpoint>>()
    };
    for datapoint in datapoints {
        let to = receivers(datapoint, events::CALL_PROCESSED, None);
        let data = events::call_processed(datapoint);
        emit_into(batch, datapoint.organization_id, events::CALL_PROCESSED, &data, &to, now)?;
    }
    let mut cooldowns = Cooldowns::read(connection, &endpoints, failures, now, context).await?;
    for failure in failures {
        let Some(datapoint) =
            datapoints.iter().find(|datapoint| datapoint.id == failure.datapoint_id)
        else {
            continue;
        };
        let mut to = receivers(datapoint, events::CHECK_FAILED, Some(failure.monitor_id));
        to.retain(|endpoint| cooldowns.take(endpoint, failure.monitor_id));
        emit_into(batch, datapoint.organization_id, events::CHECK_FAILED, &failure.data, &to, now)?;
    }
    cooldowns.write_into(batch);
    Ok(())
}

/// The `check.failed` cooldowns of one `events_into`: when each endpoint with a cooldown last
/// got each monitor's (read once), and the alerts this commit sends (written with it).
struct Cooldowns {
    last_sent_ms: HashMap<(Uuid, Uuid), i64>,
    sent: Vec<(Uuid, Uuid)>,
    now_ms: i64,
}

impl Cooldowns {
    /// One query for the endpoints that have a cooldown, when a check failed.
    async fn read(
        connection: &impl ConnectionTrait,
        endpoints: &[Endpoint],
        failures: &[super::monitors::CheckFailure],
        now: DateTime<Utc>,
        context: &'static str,
    ) -> Result<Self, Error> {
        let mut cooldowns =
            Self { last_sent_ms: HashMap::new(), sent: Vec::new(), now_ms: to_millis(now) };
        let held: Vec<String> = endpoints
            .iter()
            .filter(|endpoint| endpoint.alert_cooldown_seconds > 0)
            .map(|endpoint| endpoint.id.to_string())
            .collect();
        if held.is_empty() || failures.is_empty() {
            return Ok(cooldowns);
        }
        for model in alert_cooldown::Entity::find()
            .filter(alert_cooldown::Column::EndpointId.is_in(held))
            .all(connection)
            .await
            .map_err(db_error(context))?
        {
            let key =
                (parse_uuid(context, &model.endpoint_id)?, parse_uuid(context, &model.monitor_id)?);
            cooldowns.last_sent_ms.insert(key, model.sent_at_ms);
        }
        Ok(cooldowns)
    }

    /// Whether `endpoint` gets this `check.failed` of `monitor_id`: always without a
    /// cooldown; with one, when none was sent within it (counting this commit's).
    fn take(&mut self, endpoint: &Endpoint, monitor_id: Uuid) -> bool {
        if endpoint.alert_cooldown_seconds == 0 {
            return true;
        }
        let key = (endpoint.id, monitor_id);
        let cooldown_ms = i64::from(endpoint.alert_cooldown_seconds) * 1000;
        if self.last_sent_ms.get(&key).is_some_and(|sent| self.now_ms - sent < cooldown_ms) {
            return false;
        }
        self.last_sent_ms.insert(key, self.now_ms);
        self.sent.push(key);
        true
    }

    fn write_into(self, batch: &mut Batch) {
        if self.sent.is_empty() {
            return;
        }
        let on_conflict = sea_orm::sea_query::OnConflict::columns([
            alert_cooldown::Column::EndpointId,
            alert_cooldown::Column::MonitorId,
        ])
        .update_column(alert_cooldown::Column::SentAtMs)
        .to_owned();
        let rows = self
            .sent
            .iter()
            .map(|(endpoint_id, monitor_id)| alert_cooldown::ActiveModel {
                endpoint_id: Set(endpoint_id.to_string()),
                monitor_id: Set(monitor_id.to_string()),
                sent_at_ms: Set(self.now_ms),
            })
            .collect();
        batch.insert_rows(rows, Some(&on_conflict));
    }
}

/// Writes, into `batch`, a `call.failed` for `call` to the enabled endpoints of its
/// organization that subscribe to it and whose filter its provider, tags and metadata pass.
pub(super) async fn call_failed_into(
    connection: &impl ConnectionTrait,
    call: &events::FailedCall<'_>,
    batch: &mut Batch,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), Error> {
    let endpoints = enabled_endpoints(connection, &[call.organization_id], context).await?;
    let to: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|endpoint| {
            endpoint.subscribes(events::CALL_FAILED)
                && endpoint.filter.matches(call.provider, call.tags, call.metadata)
                && endpoint.filter.monitor_id.is_none()
        })
        .collect();
    let data = events::call_failed(call);
    emit_into(batch, call.organization_id, events::CALL_FAILED, &data, &to, now)?;
    Ok(())
}

/// Writes, into `batch`, an event about an integration of `provider` to the enabled endpoints
/// of the organization that subscribe to `event_type` and whose filter's provider, if any, is
/// that one (a filter's tags, metadata and monitor are about calls: such endpoints get none).
#[allow(clippy::too_many_arguments)] // the event, where it goes, and the transaction's own
pub(super) async fn integration_event_into(
    connection: &impl ConnectionTrait,
    organization_id: Uuid,
    provider: &str,
    event_type: &str,
    data: &serde_json::Value,
    batch: &mut Batch,
    now: DateTime<Utc>,
    context: &'static str,
) -> Result<(), Error> {
    let endpoints = enabled_endpoints(connection, &[organization_id], context).await?;
    let to: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|endpoint| {
            let filter = &endpoint.filter;
            endpoint.subscribes(event_type)
                && filter.provider.as_deref().is_none_or(|wanted| wanted == provider)
                && filter.tags.is_empty()
                && filter.metadata.is_empty()
                && filter.monitor_id.is_none()
        })
        .collect();
    emit_into(batch, organization_id, event_type, data, &to, now)?;
    Ok(())
}

/// Writes an event and its deliveries to `receivers` into `batch`; nothing without receivers.
fn emit_into(
    batch: &mut Batch,
    organization_id: Uuid,
    event_type: &str,
    data: &serde_json::Value,
    receivers: &[&Endpoint],
    now: DateTime<Utc>,
) -> Result<Option<String>, Error> {
    if receivers.is_empty() {
        return Ok(None);
    }
    let id = events::new_event_id(now);
    let now_ms = to_millis(now);
    batch.insert_rows(
        vec![event::ActiveModel {
            id: Set(id.clone()),
            organization_id: Set(organization_id.to_string()),
            event_type: Set(event_type.to_owned()),
            body: Set(events::envelope(event_type, now, data)),
            created_at_ms: Set(now_ms),
        }],
        None,
    );
    batch.insert_rows(
        receivers
            .iter()
            .map(|endpoint| event_delivery::ActiveModel {
                event_id: Set(id.clone()),
                endpoint_id: Set(endpoint.id.to_string()),
                organization_id: Set(organization_id.to_string()),
                state: Set(PENDING.to_owned()),
                attempts: Set(0),
                next_attempt_at_ms: Set(now_ms),
                last_status: Set(None),
                last_error: Set(String::new()),
                created_at_ms: Set(now_ms),
                updated_at_ms: Set(now_ms),
            })
            .collect(),
        None,
    );
    Ok(Some(id))
}

/// The enabled endpoints of `organizations` (`event_endpoints_by_organization`).
async fn enabled_endpoints(
    connection: &impl ConnectionTrait,
    organizations: &[Uuid],
    context: &'static str,
) -> Result<Vec<Endpoint>, Error> {
    if organizations.is_empty() {
        return Ok(Vec::new());
    }
    event_endpoint::Entity::find()
        .filter(
            event_endpoint::Column::OrganizationId.is_in(organizations.iter().map(Uuid::to_string)),
        )
        .filter(event_endpoint::Column::Enabled.eq(true))
        .all(connection)
        .await
        .map_err(db_error(context))?
        .into_iter()
        .map(|model| sealed_endpoint(model).map(|sealed| sealed.endpoint))
        .collect()
}

/// Fails the endpoint's pending deliveries (`event_deliveries_by_endpoint`).
fn fail_pending(
    endpoint_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> sea_orm::sea_query::UpdateStatement {
    Query::update()
        .table(event_delivery::Entity)
        .value(event_delivery::Column::State, FAILED)
        .value(event_delivery::Column::LastError, reason)
        .value(event_delivery::Column::UpdatedAtMs, to_millis(now))
        .and_where(event_delivery::Column::EndpointId.eq(endpoint_id.to_string()))
        .and_where(event_delivery::Column::State.eq(PENDING))
        .to_owned()
}

fn placeholder(backend: DbBackend, index: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${index}"),
        _ => format!("?{index}"),
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value)
        .map_err(|error| Error::internal("encoding an event endpoint", error))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|error| Error::internal("reading an event endpoint", error))
}

fn endpoint_model(sealed: &SealedEndpoint) -> Result<event_endpoint::ActiveModel, Error> {
    let endpoint = &sealed.endpoint;
    Ok(event_endpoint::ActiveModel {
        id: Set(endpoint.id.to_string()),
        organization_id: Set(endpoint.organization_id.to_string()),
        url: Set(endpoint.url.clone()),
        description: Set(endpoint.description.clone()),
        event_types_json: Set(to_json(&endpoint.event_types)?),
        filter_json: Set(to_json(&endpoint.filter)?),
        include_transcript: Set(endpoint.include_transcript),
        rate_limit_per_second: Set(endpoint
            .rate_limit_per_second
            .map(|limit| i32::try_from(limit).unwrap_or(i32::MAX))),
        secrets_json: Set(to_json(&sealed.secrets)?),
        headers_json: Set(to_json(&sealed.headers)?),
        enabled: Set(endpoint.enabled),
        disabled_reason: Set(endpoint.disabled_reason.clone()),
        failing_since_ms: Set(endpoint.failing_since.map(to_millis)),
        sent: Set(i64::try_from(endpoint.sent).unwrap_or(i64::MAX)),
        failed: Set(i64::try_from(endpoint.failed).unwrap_or(i64::MAX)),
        last_success_at_ms: Set(endpoint.last_success_at.map(to_millis)),
        last_failure_at_ms: Set(endpoint.last_failure_at.map(to_millis)),
        created_at_ms: Set(to_millis(endpoint.created_at)),
        updated_at_ms: Set(to_millis(endpoint.updated_at)),
        kind: Set(endpoint.kind.as_str().to_owned()),
        alert_cooldown_seconds: Set(
            i32::try_from(endpoint.alert_cooldown_seconds).unwrap_or(i32::MAX)
        ),
    })
}

fn sealed_endpoint(model: event_endpoint::Model) -> Result<SealedEndpoint, Error> {
    let context = "reading an event endpoint";
    let secrets: Vec<StoredSecret> = from_json(&model.secrets_json)?;
    let headers: StoredHeaders = from_json(&model.headers_json)?;
    let filter: EventFilter = from_json(&model.filter_json)?;
    let endpoint = Endpoint {
        id: parse_uuid(context, &model.id)?,
        organization_id: parse_uuid(context, &model.organization_id)?,
        url: model.url,
        description: model.description,
        event_types: from_json(&model.event_types_json)?,
        filter,
        include_transcript: model.include_transcript,
        rate_limit_per_second: model
            .rate_limit_per_second
            .and_then(|limit| u32::try_from(limit).ok())
            .filter(|limit| *limit > 0),
        enabled: model.enabled,
        disabled_reason: model.disabled_reason,
        failing_since: model.failing_since_ms.map(from_millis),
        header_names: headers.names.clone(),
        sent: u64::try_from(model.sent).unwrap_or(0),
        failed: u64::try_from(model.failed).unwrap_or(0),
        last_success_at: model.last_success_at_ms.map(from_millis),
        last_failure_at: model.last_failure_at_ms.map(from_millis),
        created_at: from_millis(model.created_at_ms),
        updated_at: from_millis(model.updated_at_ms),
        active_secrets: secrets.len(),
        kind: events::EndpointKind::parse(&model.kind)
            .ok_or_else(|| Error::internal(context, format!("unknown kind {}", model.kind)))?,
        alert_cooldown_seconds: u32::try_from(model.alert_cooldown_seconds).unwrap_or(0),
    };
    Ok(SealedEndpoint { endpoint, secrets, headers })
}
