//! What `GET /metrics` reports, in the OpenMetrics text format Prometheus scrapes: requests and
//! verdicts of the webhook routes, acknowledged conversations by way in, ack latency, group
//! commit sizes, jobs by outcome, datapoints written, transcription time and audio seconds
//! transcribed, and, read from the database at each
//! scrape, the queue's depth by status and the age of its oldest due job. One registry per
//! server (no global recorder), so servers in one process keep their own counts.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    webhook_requests: Family<Labels, Counter>,
    acknowledged: Family<Labels, Counter>,
    ack_seconds: Histogram,
    group_commit_requests: Histogram,
    jobs: Family<Labels, Counter>,
    datapoints_written: Counter,
    transcription_seconds: Histogram,
    transcribed_audio_seconds: Counter<f64>,
    queue_jobs: Family<Labels, Gauge>,
    oldest_due_seconds: Gauge,
    intake_log_requests: Gauge,
    api_replicas: Gauge,
    write_turns: Counter,
    write_turn_seconds: Counter<f64>,
    /// Held while a render brings the write-turn counters up to the totals it was given, so
    /// two scrapes at once add each part once.
    rendering: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The queue as the database says at a scrape.
#[derive(Clone, Debug, Default)]
pub struct QueueState {
    /// Jobs by status name.
    pub by_status: Vec<(&'static str, u64)>,
    /// Seconds since the oldest due queued job became due; 0 when none waits.
    pub oldest_due_seconds: u64,
    /// Acknowledged requests whose writes wait in the intake log (this process's count).
    pub intake_log_requests: u64,
    /// Turns of the one writer (SQLite) that have ended in this process, and the seconds they
    /// were held in total; both 0 on PostgreSQL, which has no turns.
    pub write_turns: u64,
    pub write_turn_seconds: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("earshot");
        let webhook_requests = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Webhook requests by provider and verdict (accepted, duplicate, ignored, or the refusal's code)",
            webhook_requests.clone(),
        );
        let acknowledged = Family::<Labels, Counter>::default();
        registry.register(
            "acknowledged_conversations",
            "Conversations acknowledged after their durable commit, by source (api, sdk, webhook) and outcome (created, duplicate)",
            acknowledged.clone(),
        );
        let ack_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "ack_seconds",
            "Time from handing a request's writes to the group commit until they are durable",
            ack_seconds.clone(),
        );
        let group_commit_requests = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "group_commit_requests",
            "Requests committed together in one transaction",
            group_commit_requests.clone(),
        );
        let jobs = Family::<Labels, Counter>::default();
        registry.register("jobs", "Job runs by outcome (succeeded, retried, dead)", jobs.clone());
        let datapoints_written = Counter::default();
        registry.register(
            "datapoints_written",
            "Datapoints stored by the pipeline",
            datapoints_written.clone(),
        );
        let transcription_seconds = Histogram::new(exponential_buckets(0.125, 2.0, 14));
        registry.register(
            "transcription_seconds",
            "Time each transcription took, waiting for a recognizer included",
            transcription_seconds.clone(),
        );
        let transcribed_audio_seconds = Counter::<f64>::default();
        registry.register(
            "transcribed_audio_seconds",
            "Seconds of audio transcribed; over transcription_seconds_sum, the speed against real time",
            transcribed_audio_seconds.clone(),
        );
        let queue_jobs = Family::<Labels, Gauge>::default();
        registry.register(
            "queue_jobs",
            "Jobs in the queue by status (queued, running, parked, dead; successes are in jobs_total)",
            queue_jobs.clone(),
        );
        let oldest_due_seconds = Gauge::default();
        registry.register(
            "queue_oldest_due_seconds",
            "Seconds the oldest due queued job has waited",
            oldest_due_seconds.clone(),
        );
        let intake_log_requests = Gauge::default();
        registry.register(
            "intake_log_requests",
            "Acknowledged requests whose calls wait in the intake log, not stored as ingests yet",
            intake_log_requests.clone(),
        );
        let api_replicas = Gauge::default();
        registry.register(
            "api_replicas",
            "Processes serving the API on this database, as this one last counted (integration \
             rate limits are divided among them)",
            api_replicas.clone(),
        );
        let write_turns = Counter::default();
        registry.register(
            "write_turns",
            "Turns of the one writer (SQLite) that have ended: group commits, workers' claims and results, other writes",
            write_turns.clone(),
        );
        let write_turn_seconds = Counter::<f64>::default();
        registry.register(
            "write_turn_seconds",
            "Seconds the one writer's turns were held; its rate is the share of the time the writer is busy (1 = saturated)",
            write_turn_seconds.clone(),
        );
        Self {
            registry,
            api_replicas,
            write_turns,
            write_turn_seconds,
            rendering: std::sync::Mutex::new(()),
            webhook_requests,
            acknowledged,
            ack_seconds,
            group_commit_requests,
            jobs,
            datapoints_written,
            transcription_seconds,
            transcribed_audio_seconds,
            queue_jobs,
            oldest_due_seconds,
            intake_log_requests,
        }
    }
}

impl Metrics {
    pub fn webhook_request(&self, provider: &str, verdict: &str) {
        // Unknown provider names in the path are one label, not one series each.
        let provider = crate::model::integrations::Provider::parse(provider)
            .map_or("unknown", crate::model::integrations::Provider::as_str);
        self.webhook_requests
            .get_or_create(&vec![
                ("provider", provider.to_owned()),
                ("verdict", verdict.to_owned()),
            ])
            .inc();
    }

    pub fn acknowledged(&self, source: &str, outcome: &str, count: u64) {
        self.acknowledged
            .get_or_create(&vec![("source", source.to_owned()), ("outcome", outcome.to_owned())])
            .inc_by(count);
    }

    pub fn ack_latency(&self, elapsed: std::time::Duration) {
        self.ack_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn group_commit(&self, requests: usize) {
        #[allow(clippy::cast_precision_loss)]
        self.group_commit_requests.observe(requests as f64);
    }

    pub fn job(&self, outcome: &'static str) {
        self.jobs.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
    }

    pub fn datapoint_written(&self) {
        self.datapoints_written.inc();
    }

    /// How many processes serve the API on this database.
    pub fn api_replicas(&self, count: u32) {
        self.api_replicas.set(i64::from(count));
    }

    /// `count` datapoints written at once (at intake).
    pub fn datapoints_written(&self, count: usize) {
        self.datapoints_written.inc_by(count as u64);
    }

    /// A transcription that took `elapsed` for `audio_ms` of audio.
    pub fn transcribed(&self, elapsed: std::time::Duration, audio_ms: i64) {
        self.transcription_seconds.observe(elapsed.as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        self.transcribed_audio_seconds.inc_by(audio_ms.max(0) as f64 / 1000.0);
    }

    /// The exposition, with the queue's gauges set from `queue`.
    pub fn render(&self, queue: &QueueState) -> String {
        for (status, count) in &queue.by_status {
            self.queue_jobs
                .get_or_create(&vec![("status", (*status).to_owned())])
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        self.oldest_due_seconds.set(i64::try_from(queue.oldest_due_seconds).unwrap_or(i64::MAX));
        self.intake_log_requests.set(i64::try_from(queue.intake_log_requests).unwrap_or(i64::MAX));
        {
            // Another render's panic left nothing half-done worth refusing to report.
            let _rendering =
                self.rendering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.write_turns.inc_by(queue.write_turns.saturating_sub(self.write_turns.get()));
            let seconds = queue.write_turn_seconds - self.write_turn_seconds.get();
            if seconds > 0.0 {
                self.write_turn_seconds.inc_by(seconds);
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_the_queue_appear_in_the_exposition() {
        let metrics = Metrics::default();
        metrics.webhook_request("bland", "accepted");
        metrics.webhook_request("no-such-provider", "not_found");
        metrics.acknowledged("api", "created", 3);
        metrics.group_commit(4);
        metrics.transcribed(std::time::Duration::from_millis(1500), 12_500);
        let text = metrics.render(&QueueState {
            by_status: vec![("queued", 7), ("running", 1)],
            oldest_due_seconds: 12,
            intake_log_requests: 30,
            write_turns: 3,
            write_turn_seconds: 1.5,
        });
        for line in [
            "earshot_webhook_requests_total{provider=\"bland\",verdict=\"accepted\"} 1",
            "earshot_webhook_requests_total{provider=\"unknown\",verdict=\"not_found\"} 1",
            "earshot_acknowledged_conversations_total{source=\"api\",outcome=\"created\"} 3",
            "earshot_queue_jobs{status=\"queued\"} 7",
            "earshot_queue_oldest_due_seconds 12",
            "earshot_intake_log_requests 30",
            "earshot_group_commit_requests_count 1",
            "earshot_transcription_seconds_count 1",
            "earshot_transcription_seconds_sum 1.5",
            "earshot_transcribed_audio_seconds_total 12.5",
            "earshot_write_turns_total 3",
            "earshot_write_turn_seconds_total 1.5",
        ] {
            assert!(text.lines().any(|candidate| candidate == line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // The writer's totals are read at each scrape; the counters report them, not a sum.
        let later = metrics.render(&QueueState {
            write_turns: 5,
            write_turn_seconds: 2.25,
            ..QueueState::default()
        });
        for line in ["earshot_write_turns_total 5", "earshot_write_turn_seconds_total 2.25"] {
            assert!(later.lines().any(|candidate| candidate == line), "{line} missing in\n{later}");
        }
    }
}
