//! Builds everything from the configuration and serves gRPC, gRPC-web and REST on one port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::asr::Asr;
use crate::blob::BlobStore;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::crypto::master_key::{self, KeySource};
use crate::domain::Domain;
use crate::domain::auth::ApiKeyLimiter;
use crate::error::Error;
use crate::jobs::{WorkerContext, spawn_workers};
use crate::pipeline::Stages;
use crate::pipeline::fetch::Fetcher;
use crate::pipeline::process::IngestJobs;
use crate::storage::{IngestWriter, IntakeSettings, Storage};
use crate::transport::{grpc, rest};

/// A built application, ready to serve.
#[derive(Debug)]
pub struct App {
    pub domain: Domain,
    pub key_source: KeySource,
    config: Config,
}

impl App {
    /// Opens the data directory and database, runs migrations, and loads the master key.
    /// `bound` is the address the listener got, for the default public base URL.
    pub async fn build(config: Config, bound: SocketAddr) -> Result<Self, Error> {
        Self::build_with_clock(config, bound, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        bound: SocketAddr,
        clock: SharedClock,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|error| Error::internal("creating the data directory", error))?;
        let storage = Storage::connect(&config.effective_database_url()).await?;
        storage.migrate().await?;
        let (keyring, key_source) = master_key::load_or_create(
            &config.master_key,
            &config.previous_master_keys,
            &config.data_dir,
        )
        .map_err(|error| Error::internal("loading the master key", error))?;
        let settings = config.domain_settings(config.effective_public_base_url(bound));
        let location =
            config.blob_location().map_err(|reason| Error::invalid("blob_url", reason))?;
        let blobs = BlobStore::open(&location)?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let intake_settings = IntakeSettings {
            max_attempts: config.jobs.max_attempts,
            transcripts_at_intake: config.ingest.transcripts_at_intake,
        };
        // Writes a previous process logged and did not store yet, before any request is
        // taken: a repeat of one of them is then found among the stored ingests. A row that
        // cannot be stored does not keep the process from serving: it stays in the log, and
        // the log's task tries it again.
        match storage.expand_whole_intake_log(intake_settings).await {
            Ok(stored) => {
                if stored.expanded.requests > 0 {
                    tracing::info!(
                        requests = stored.expanded.requests,
                        "intake log left by a previous process stored"
                    );
                }
                for (row, error) in stored.failed {
                    tracing::error!(row, error = %error, "an intake log row could not be stored");
                }
            }
            Err(error) => {
                error.log_if_internal();
                tracing::warn!("the intake log left by a previous process is not stored yet");
            }
        }
        let jobs_wakeup = Arc::new(tokio::sync::Notify::new());
        let ingest_writer = IngestWriter::start(
            storage.clone(),
            intake_settings,
            config.ingest.max_group_commit,
            clock.clone(),
            metrics.clone(),
            // One process owns an SQLite file; PostgreSQL replicas share theirs.
            if storage.queue().is_embedded() {
                config.ingest.intake_log
            } else {
                crate::jobs::IntakeLogging::Never
            },
            crate::jobs::IntakeLoad::new(config.ingest.intake_log_above_per_second),
            jobs_wakeup.clone(),
        );
        let domain = Domain {
            storage,
            keyring: Arc::new(keyring),
            clock,
            settings: Arc::new(settings),
            blobs,
            ingest_writer,
            jobs_wakeup,
            webhook_gate: Arc::default(),
            api_key_limiter: Arc::new(ApiKeyLimiter::new(
                config.server.api_key_rate_limit_per_minute,
            )),
            metrics,
            event_senders: Arc::new(std::sync::atomic::AtomicU32::new(1)),
        };
        Ok(Self { domain, key_source, config })
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to `server.shutdown_grace_seconds`), and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let accepting = Arc::new(AtomicBool::new(true));
        let role = self.config.server.role;
        let (grpc_routes, health_reporter) =
            grpc::routes(&self.domain, self.config.server.max_grpc_message_bytes)
                .await
                .map_err(|error| Error::internal("building gRPC services", error))?;
        let rest_router = rest::router(
            role.serves_api(),
            rest::RestState {
                domain: Arc::new(self.domain.clone()),
                accepting: accepting.clone(),
                metrics_token: Some(self.config.server.metrics_token.clone())
                    .filter(|token| !token.is_empty())
                    .map(Arc::from),
            },
            self.config.ingest.max_request_bytes,
        );
        // A worker serves its health and metrics only.
        let router = if role.serves_api() {
            grpc_routes
                .merge(rest_router)
                .merge(crate::transport::console::router(self.domain.clone()))
                .fallback(rest::not_found)
        } else {
            rest_router.fallback(rest::not_served_by_workers)
        };
        let router = router
            .layer(cors_layer(&self.config.server.cors_allowed_origins))
            .layer(tower_http::trace::TraceLayer::new_for_http())
            // A bug that panics on some input answers 500 instead of dropping the connection
            // (which a provider would retry forever).
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(rest::panic_response));

        let address = listener
            .local_addr()
            .map_err(|error| Error::internal("reading the bound address", error))?;
        tracing::info!(
            %address,
            role = role.as_str(),
            database = self.domain.storage.backend_name(),
            public_base_url = %self.domain.settings.public_base_url,
            "earshot serving gRPC, gRPC-web and REST"
        );

        let (workers_stop, workers_stop_receiver) = tokio::sync::watch::channel(false);
        let mut workers = if role.runs_workers() {
            self.start_workers(&workers_stop_receiver).await?
        } else {
            Vec::new()
        };
        // Outbound events go from the processes that run workers.
        if role.runs_workers() {
            workers.push(tokio::spawn(crate::domain::events::run_sender(
                self.domain.clone(),
                workers_stop_receiver.clone(),
            )));
        }

        let heartbeat = tokio::spawn({
            let domain = self.domain.clone();
            let stop = workers_stop_receiver.clone();
            async move { domain.beat(uuid::Uuid::now_v7(), role.as_str(), HEARTBEAT, stop).await }
        });
        let follower = tokio::spawn({
            let domain = self.domain.clone();
            let stop = workers_stop_receiver.clone();
            async move { domain.follow_changes(stop).await }
        });
        let upkeep = tokio::spawn(upkeep(
            self.domain.clone(),
            Duration::from_secs(self.config.integrations.usage_flush_seconds),
            Duration::from_secs(self.config.retention.sweep_interval_seconds),
            workers_stop_receiver.clone(),
        ));

        let (stop_sender, mut stop_receiver) = tokio::sync::watch::channel(false);
        let server =
            crate::transport::serve::serve(listener, router, self.serve_limits(), async move {
                let _ = stop_receiver.wait_for(|stop| *stop).await;
            });
        let mut server_task = tokio::spawn(server);

        tokio::select! {
            finished = &mut server_task => {
                return finished.map_err(|error| Error::internal("running the server", error));
            }
            () = shutdown => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
        accepting.store(false, Ordering::SeqCst);
        for name in grpc::SERVICE_NAMES {
            health_reporter.set_service_status(name, tonic_health::ServingStatus::NotServing).await;
        }
        let _ = stop_sender.send(true);
        let grace = Duration::from_secs(self.config.server.shutdown_grace_seconds);
        match tokio::time::timeout(grace, &mut server_task).await {
            Ok(finished) => {
                finished.map_err(|error| Error::internal("running the server", error))?;
            }
            Err(_) => {
                tracing::warn!(
                    grace_seconds = grace.as_secs(),
                    "shutdown grace elapsed; closing remaining connections"
                );
                server_task.abort();
            }
        }
        // Workers finish the job in hand; an unfinished one is claimed again after its lease.
        let _ = workers_stop.send(true);
        for worker in workers {
            if tokio::time::timeout(grace, worker).await.is_err() {
                tracing::warn!("a worker was still busy when the grace period ended");
            }
        }
        if heartbeat.await.is_err() {
            tracing::warn!("the heartbeat ended abnormally");
        }
        if follower.await.is_err() {
            tracing::warn!("the change listener ended abnormally");
        }
        if upkeep.await.is_err() {
            tracing::warn!("the upkeep task ended abnormally");
        }
        self.domain.storage.clone().close().await?;
        tracing::info!("stopped");
        Ok(())
    }

    /// Starts the workers (with transcription when configured), after queueing again what a
    /// previous process left running on an embedded database.
    async fn start_workers(
        &self,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
        let fetcher = Fetcher::new(self.config.fetch_settings())
            .map_err(|error| Error::internal("starting workers", error))?;
        let asr = if self.config.asr.enabled {
            let settings = self.config.asr_settings();
            let asr = tokio::task::spawn_blocking(move || Asr::start(&settings))
                .await
                .map_err(|error| Error::internal("starting transcription", error))?;
            if let Some(reason) = asr.unavailable_reason() {
                tracing::warn!(reason = %reason, "audio-only calls cannot be transcribed until this is fixed");
            }
            Some(asr)
        } else {
            None
        };
        let runner = IngestJobs { domain: self.domain.clone(), stages: Stages { fetcher, asr } };
        let workers_context = WorkerContext {
            queue: self.domain.storage.queue(),
            clock: self.domain.clock.clone(),
            wakeup: self.domain.jobs_wakeup.clone(),
            settings: self.config.job_settings(),
            metrics: self.domain.metrics.clone(),
            intake: self.domain.ingest_writer.load(),
        };
        if workers_context.queue.is_embedded() {
            // One process owns an SQLite file: whatever a previous process left running is
            // abandoned, and is claimed again now instead of after its lease.
            let reclaimed = workers_context
                .queue
                .reclaim_abandoned(self.domain.clock.now())
                .await
                .map_err(|error| Error::internal("reclaiming abandoned jobs", error))?;
            if reclaimed > 0 {
                tracing::info!(reclaimed, "jobs left running by a previous process queued again");
            }
        }
        Ok(spawn_workers(&workers_context, &runner, stop))
    }
}

/// How often a process records that it is alive (`Domain::beat`); one silent for three is not
/// counted among the processes serving the API.
const HEARTBEAT: Duration = Duration::from_secs(10);

impl App {
    fn serve_limits(&self) -> crate::transport::serve::Limits {
        let server = &self.config.server;
        crate::transport::serve::Limits {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_seconds),
            body_idle_timeout: Duration::from_secs(server.body_idle_timeout_seconds),
            request_timeout: Duration::from_secs(server.request_timeout_seconds),
            max_connections: server.max_connections,
            max_connections_per_address: server.max_connections_per_address,
            max_concurrent_large_bodies: server.max_concurrent_large_bodies,
        }
    }
}

/// Background upkeep: writes the webhook routes' usage counters every `flush_every` (and a
/// last time at shutdown), prunes the delivery log and old events hourly, announces rotated-out
/// integration secrets whose grace ends soon every minute, and removes what the projects'
/// retention says has expired every `sweep_every`.
async fn upkeep(
    domain: Domain,
    flush_every: Duration,
    sweep_every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    const PRUNE_EVERY: Duration = Duration::from_secs(3600);
    let mut flush = tokio::time::interval(flush_every);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let mut prune_events = tokio::time::interval(PRUNE_EVERY);
    let mut expiring = tokio::time::interval(Duration::from_secs(60));
    let mut sweep = tokio::time::interval(sweep_every);
    loop {
        tokio::select! {
            _ = sweep.tick() => match domain.sweep_retention().await {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(
                        datapoints = removed.datapoints,
                        recordings = removed.recordings,
                        "removed calls past their project's retention"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "could not apply retention"),
            },
            _ = flush.tick() => {
                if let Err(error) = domain.flush_webhook_usage().await {
                    tracing::warn!(error = %error, "could not write integration usage");
                }
            }
            _ = prune.tick() => match domain.prune_webhook_deliveries().await {
                Ok((bodies, deliveries)) if bodies + deliveries > 0 => {
                    tracing::info!(bodies, deliveries, "pruned the webhook delivery log");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "could not prune webhook deliveries"),
            },
            _ = prune_events.tick() => match domain.prune_events().await {
                Ok((events, attempts)) if events + attempts > 0 => {
                    tracing::info!(events, attempts, "pruned outbound events past their retention");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "could not prune outbound events"),
            },
            _ = expiring.tick() => match domain.announce_expiring_secrets().await {
                Ok(announced) if announced > 0 => {
                    tracing::info!(announced, "announced integration secrets whose grace ends soon");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "could not announce expiring secrets"),
            },
            changed = stop.changed() => {
                let stopping = changed.is_err() || *stop.borrow_and_update();
                if stopping {
                    break;
                }
            }
        }
    }
    if let Err(error) = domain.flush_webhook_usage().await {
        tracing::warn!(error = %error, "could not write integration usage at shutdown");
    }
}

/// The injectable entry point: build from `config`, serve on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let bound = listener
        .local_addr()
        .map_err(|error| Error::internal("reading the bound address", error))?;
    App::build(config, bound).await?.serve(listener, shutdown).await
}

fn cors_layer(allowed_origins: &[String]) -> CorsLayer {
    let origins = if allowed_origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            allowed_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    let header = HeaderName::from_static;
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header("content-type"),
            header("api-key"),
            header("authorization"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("connect-protocol-version"),
            header("connect-timeout-ms"),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(24 * 60 * 60))
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
