//! The in-memory state of the webhook hot path: integrations with their opened secrets (cached,
//! dropped on every change made through this server and, on PostgreSQL, on every change another
//! server of the database announces, and reloaded after a short TTL in case an announcement was
//! lost), one token bucket per
//! integration (spent only by authenticated requests), a count of failed authentications per
//! sender address a minute (past its budget, the address is refused before its body is read), and
//! usage counters written to the database in batches instead of per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::Domain;
use crate::error::Result;
use crate::model::integrations::Usage;
use crate::model::integrations::{Integration, SecretSet};

/// An integration as the webhook route sees it.
#[derive(Debug)]
pub struct GateEntry {
    pub integration: Integration,
    /// The current set first, then sets in their grace period as of loading.
    secrets: Vec<SecretSet>,
    allowlist: Vec<ipnet::IpNet>,
    loaded_at: Instant,
}

impl GateEntry {
    /// The secret sets valid at `now`.
    pub fn secrets_at(&self, now: DateTime<Utc>) -> Vec<SecretSet> {
        self.secrets
            .iter()
            .filter(|set| set.expires_at.is_none_or(|deadline| deadline > now))
            .cloned()
            .collect()
    }

    /// Whether `address` may post: every address when the allowlist is empty.
    pub fn allows(&self, address: IpAddr) -> bool {
        allowed(&self.allowlist, address)
    }
}

fn allowed(allowlist: &[ipnet::IpNet], address: IpAddr) -> bool {
    let address = canonical(address);
    allowlist.is_empty() || allowlist.iter().any(|network| network.contains(&address))
}

/// IPv4-mapped IPv6 addresses (from dual-stack listeners) as the IPv4 address they carry.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

#[derive(Debug)]
struct Bucket {
    per_minute: u32,
    limiter: DefaultDirectRateLimiter,
}

/// Failed authentications of one address in the minute that began at `start`.
#[derive(Clone, Copy, Debug)]
struct FailureWindow {
    start: DateTime<Utc>,
    failures: u32,
}

/// Addresses whose failures are remembered at once; past it, windows that ended are dropped,
/// and if none has, all are (a flood from that many addresses is beyond a per-address limit).
const MAX_TRACKED_ADDRESSES: usize = 100_000;

#[derive(Debug, Default)]
pub struct WebhookGate {
    entries: RwLock<HashMap<String, Arc<GateEntry>>>,
    buckets: Mutex<HashMap<Uuid, Arc<Bucket>>>,
    failures: Mutex<HashMap<IpAddr, FailureWindow>>,
    usage: Mutex<HashMap<Uuid, Usage>>,
    /// Held for writing while counts move from memory to the database, and for reading by
    /// whoever adds the two, so that every count is seen in exactly one of them.
    usage_moving: tokio::sync::RwLock<()>,
    /// Processes serving the API on this database as last counted, this one included; 0
    /// before the first count, which counts as 1.
    replicas: std::sync::atomic::AtomicU32,
    /// Told when another process starts or stops, so that they are counted again at once.
    replicas_changed: tokio::sync::Notify,
}

impl WebhookGate {
    fn cached(&self, public_id: &str, ttl: Duration) -> Option<Arc<GateEntry>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(public_id).filter(|entry| entry.loaded_at.elapsed() < ttl).cloned()
    }

    /// Drops the cached entry of `public_id`, so the next request reloads it.
    pub fn forget(&self, public_id: &str) {
        self.entries.write().unwrap_or_else(PoisonError::into_inner).remove(public_id);
    }

    /// Records how many processes serve the API on this database.
    pub fn set_replicas(&self, count: u32) {
        self.replicas.store(count, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drops every cached entry.
    pub fn forget_all(&self) {
        self.entries.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Takes one request from the integration's bucket: this process's share of `per_minute`
    /// a minute (the budget divided by the processes serving the API, rounded down, at least
    /// one), with bursts up to a minute's worth of the share. Err holds how long until the next
    /// request would pass.
    pub fn take(&self, integration_id: Uuid, per_minute: u32) -> std::result::Result<(), Duration> {
        let replicas = self.replicas.load(std::sync::atomic::Ordering::Relaxed).max(1);
        let per_minute = (per_minute / replicas).max(1);
        let bucket = {
            let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            let bucket = buckets.entry(integration_id).or_insert_with(|| new_bucket(per_minute));
            if bucket.per_minute != per_minute {
                *bucket = new_bucket(per_minute);
            }
            bucket.clone()
        };
        bucket
            .limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Whether `address` may still send unauthenticated requests this minute: Err holds how long
    /// until its window ends, once it has failed authentication `per_minute` times in it.
    pub fn check_address(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        per_minute: u32,
    ) -> std::result::Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match failures.get(&canonical(address)) {
            Some(window) if now < window_end(window) && window.failures >= per_minute => {
                Err((window_end(window) - now).to_std().unwrap_or(Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed authentication (or a request refused before it) from `address`.
    pub fn note_failure(&self, address: IpAddr, now: DateTime<Utc>) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED_ADDRESSES {
            failures.retain(|_, window| now < window_end(window));
            if failures.len() >= MAX_TRACKED_ADDRESSES {
                failures.clear();
            }
        }
        let window =
            failures.entry(canonical(address)).or_insert(FailureWindow { start: now, failures: 0 });
        if now >= window_end(window) {
            *window = FailureWindow { start: now, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// Counts one request to the integration refused by a rate limit.
    pub fn note_rate_limited(&self, integration_id: Uuid) {
        self.add_usage(integration_id, Usage { rate_limited: 1, ..Usage::default() });
    }

    /// Counts one request to the integration.
    pub fn note_use(&self, integration_id: Uuid, at: DateTime<Utc>) {
        self.add_usage(
            integration_id,
            Usage { requests: 1, last_used_at: Some(at), ..Usage::default() },
        );
    }

    /// Marks a counted request as validated (it passed authentication).
    pub fn note_validated(&self, integration_id: Uuid, at: DateTime<Utc>) {
        self.add_usage(integration_id, Usage { last_validated_at: Some(at), ..Usage::default() });
    }

    fn add_usage(&self, integration_id: Uuid, added: Usage) {
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        usage.entry(integration_id).or_default().merge(added);
    }

    /// Keeps counts from moving to the database until dropped: hold it across reading an
    /// integration and adding its [`pending_usage`](Self::pending_usage).
    pub async fn usage_settled(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.usage_moving.read().await
    }

    /// Usage not yet written for one integration.
    pub fn pending_usage(&self, integration_id: Uuid) -> Usage {
        let usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        usage.get(&integration_id).copied().unwrap_or_default()
    }

    fn take_usage(&self) -> HashMap<Uuid, Usage> {
        std::mem::take(&mut *self.usage.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn restore_usage(&self, unwritten: HashMap<Uuid, Usage>) {
        for (id, unwritten) in unwritten {
            self.add_usage(id, unwritten);
        }
    }
}

/// Waits `pause`, or less if `stop` turns true first: whether it did.
async fn stopped_within(stop: &mut tokio::sync::watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = stop.wait_for(|stop| *stop) => true,
        () = tokio::time::sleep(pause) => false,
    }
}

fn window_end(window: &FailureWindow) -> DateTime<Utc> {
    window.start + chrono::Duration::minutes(1)
}

fn new_bucket(per_minute: u32) -> Arc<Bucket> {
    let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
    Arc::new(Bucket { per_minute, limiter: RateLimiter::direct(quota) })
}

impl Domain {
    /// Drops the integration `public_id` from this process's webhook cache and tells the other
    /// processes of the database to drop it from theirs (`follow_changes`). If that
    /// cannot be sent, they reload it after the cache's TTL, as before.
    pub(crate) async fn integration_changed(&self, public_id: &str) {
        self.webhook_gate.forget(public_id);
        if let Err(error) = self.storage.announce_integration_change(public_id).await {
            tracing::warn!(error = %error, "other replicas see this integration change after the cache TTL");
        }
    }

    /// Applies what other processes of the database announce, until `stop` turns true:
    /// integration changes to this process's webhook cache, new jobs to its workers' wake-up.
    /// On SQLite there are none. A lost connection drops the whole cache and wakes the workers
    /// (announcements may have been missed), and is made again.
    pub async fn follow_changes(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        use crate::storage::Change;
        let mut changes = loop {
            match self.storage.changes().await {
                Ok(Some(changes)) => {
                    // What was announced before this process listened went unheard.
                    self.heard(Change::Unknown);
                    break changes;
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(error = %error, "cannot listen for changes yet; retrying");
                    if stopped_within(&mut stop, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        loop {
            let change = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                change = changes.next() => change,
            };
            match change {
                Ok(change) => self.heard(change),
                Err(error) => {
                    self.webhook_gate.forget_all();
                    tracing::warn!(error = %error, "listening for changes failed; retrying");
                    if stopped_within(&mut stop, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Applies one announcement of another process.
    fn heard(&self, change: crate::storage::Change) {
        use crate::storage::Change;
        match change {
            Change::Integration(public_id) => self.webhook_gate.forget(&public_id),
            Change::Jobs => self.jobs_wakeup.notify_waiters(),
            Change::Instances => self.webhook_gate.replicas_changed.notify_one(),
            Change::Unknown => {
                self.webhook_gate.forget_all();
                self.jobs_wakeup.notify_waiters();
                self.webhook_gate.replicas_changed.notify_one();
            }
        }
    }

    /// Beats this process's heartbeat (`id`, serving as `role`: `all`, `api` or `worker`)
    /// every `every` until `stop`
    /// turns true, and at once when another process starts or stops, keeping the count of
    /// processes serving the API (which divides integration and API-key rate limits) current;
    /// a process silent for three beats is no longer counted. The first beat announces this
    /// process; at the end, its record is removed and the others told.
    pub async fn beat(
        &self,
        id: Uuid,
        role: &str,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let started = self.clock.now();
        let mut first = true;
        loop {
            let now = self.clock.now();
            let live_since = now - chrono::Duration::from_std(every * 3).unwrap_or_default();
            match self.storage.instance_heartbeat(id, role, started, now, live_since).await {
                Ok(live) => {
                    self.webhook_gate.set_replicas(live.api);
                    self.api_key_limiter.set_replicas(live.api);
                    self.metrics.api_replicas(live.api.max(1));
                    self.event_senders.store(live.senders.max(1), Ordering::Relaxed);
                    if first {
                        first = false;
                        if let Err(error) = self.storage.announce_instances().await {
                            tracing::warn!(error = %error, "other processes count this one at their next heartbeat");
                        }
                    }
                }
                Err(error) => tracing::warn!(error = %error, "heartbeat failed; retrying"),
            }
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                () = self.webhook_gate.replicas_changed.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
        if let Err(error) = self.storage.instance_left(id).await {
            tracing::warn!(error = %error, "others stop counting this process after three heartbeats");
        }
    }

    /// The integration behind a webhook URL, with its secrets opened, from the cache when it
    /// is fresh. Disabled integrations are returned too: the route answers them like unknown
    /// ids.
    pub async fn webhook_integration(&self, public_id: &str) -> Result<Option<Arc<GateEntry>>> {
        let ttl = self.settings.webhooks.cache_ttl;
        if let Some(entry) = self.webhook_gate.cached(public_id, ttl) {
            return Ok(Some(entry));
        }
        let Some(integration) = self.integration_by_public_id(public_id).await? else {
            return Ok(None);
        };
        let secrets = self.verification_secrets(integration.id).await?;
        let allowlist = integration
            .options
            .ip_allowlist
            .iter()
            .filter_map(|entry| crate::model::integrations::parse_cidr(entry))
            .collect();
        let entry =
            Arc::new(GateEntry { integration, secrets, allowlist, loaded_at: Instant::now() });
        if !ttl.is_zero() {
            self.webhook_gate
                .entries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(public_id.to_owned(), entry.clone());
        }
        Ok(Some(entry))
    }

    /// The rate limit of an integration a minute.
    pub fn webhook_rate_limit(&self, integration: &Integration) -> u32 {
        integration
            .options
            .rate_limit_per_minute
            .unwrap_or(self.settings.rate_limit_per_minute_default)
    }

    /// Writes the usage counted since the last flush. On failure the counts are kept for the
    /// next attempt.
    pub async fn flush_webhook_usage(&self) -> Result<usize> {
        let _moving = self.webhook_gate.usage_moving.write().await;
        let usage = self.webhook_gate.take_usage();
        if usage.is_empty() {
            return Ok(0);
        }
        let rows: Vec<(Uuid, Usage)> = usage.iter().map(|(id, usage)| (*id, *usage)).collect();
        match self.storage.add_integration_usage(&rows).await {
            Ok(()) => Ok(rows.len()),
            Err(error) => {
                self.webhook_gate.restore_usage(usage);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_past_the_budget_waits() {
        let gate = WebhookGate::default();
        let id = Uuid::now_v7();
        assert!(gate.take(id, 2).is_ok());
        assert!(gate.take(id, 2).is_ok());
        let wait = gate.take(id, 2).unwrap_err();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30), "{wait:?}");
        // Another integration has its own bucket; a changed limit starts a new one.
        assert!(gate.take(Uuid::now_v7(), 2).is_ok());
        assert!(gate.take(id, 3).is_ok());
    }

    #[test]
    fn usage_accumulates_until_taken_and_survives_a_failed_write() {
        let gate = WebhookGate::default();
        let id = Uuid::now_v7();
        let first = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let second = DateTime::from_timestamp(1_700_000_060, 0).unwrap();
        gate.note_use(id, first);
        gate.note_validated(id, first);
        gate.note_use(id, second);
        gate.note_rate_limited(id);
        let expected = Usage {
            requests: 2,
            rate_limited: 1,
            last_used_at: Some(second),
            last_validated_at: Some(first),
        };
        assert_eq!(gate.pending_usage(id), expected);
        let taken = gate.take_usage();
        assert_eq!(gate.pending_usage(id), Usage::default());
        gate.restore_usage(taken);
        assert_eq!(gate.pending_usage(id), expected);
    }

    #[test]
    fn an_address_past_its_failures_waits_for_its_window_alone() {
        let gate = WebhookGate::default();
        let forger: IpAddr = "198.51.100.7".parse().unwrap();
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for _ in 0..3 {
            assert!(gate.check_address(forger, start, 3).is_ok());
            gate.note_failure(forger, start);
        }
        let later = start + chrono::Duration::seconds(20);
        assert_eq!(gate.check_address(forger, later, 3), Err(Duration::from_secs(40)));
        // The same address mapped into IPv6 is the same sender; another address is not.
        assert!(gate.check_address("::ffff:198.51.100.7".parse().unwrap(), later, 3).is_err());
        assert!(gate.check_address("198.51.100.8".parse().unwrap(), later, 3).is_ok());
        // A new minute, a new budget.
        let next = start + chrono::Duration::seconds(60);
        assert!(gate.check_address(forger, next, 3).is_ok());
        gate.note_failure(forger, next);
        assert!(gate.check_address(forger, next, 3).is_ok());
    }

    #[test]
    fn mapped_ipv6_addresses_match_ipv4_allowlists() {
        let allowlist = ["203.0.113.0/24".parse().unwrap()];
        assert!(allowed(&allowlist, "203.0.113.9".parse().unwrap()));
        assert!(allowed(&allowlist, "::ffff:203.0.113.9".parse().unwrap()));
        assert!(!allowed(&allowlist, "198.51.100.1".parse().unwrap()));
        assert!(allowed(&[], "198.51.100.1".parse().unwrap()));
    }
}
