//! The one place that wires pixdrop together: build (bind, connect, check), report the port, then
//! run until a shutdown future resolves. Tests build it on port 0 with their own Redis.
//!
//! One process runs the HTTP API (with its websockets and their event hub), the worker pool, or
//! both (`Role`). Shutdown is one signal: mark the instance not ready, close every websocket, stop
//! accepting connections and finish in-flight requests, and let the pool finish or hand back its
//! jobs (see `queue::pool`).

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio::sync::watch;

use crate::auth::quotas::Quotas;
use crate::auth::signing::UrlSigner;
use crate::auth::tickets::Tickets;
use crate::auth::{AuthMode, Authenticator};
use crate::cleanup::Cleanup;
use crate::config::Settings;
use crate::events::EventHub;
use crate::http::media::{Access, MediaAccess, OriginalsAccess};
use crate::http::page::PublicLimits;
use crate::http::ws::LiveState;
use crate::http::{self, AppState, Gate, OriginPolicy};
use crate::image_job::ImageHandler;
use crate::queue::{Queue, WorkerPool};
use crate::redis_connect::redact;
use crate::storage::Storage;

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP and workers in one process (the default).
    All,
    HttpOnly,
    WorkerOnly,
}

impl Role {
    fn serves_http(self) -> bool {
        self != Role::WorkerOnly
    }
    fn runs_workers(self) -> bool {
        self != Role::HttpOnly
    }
}

pub struct Application {
    /// Checks every request's credential; [`Application::authenticator`] hands it out for reloads.
    auth: Arc<Authenticator>,
    /// The HTTP server and its port, unless worker-only.
    http: Option<(actix_web::dev::Server, u16)>,
    /// The `metrics.bind` listener and its port, when set.
    metrics: Option<(actix_web::dev::Server, u16)>,
    /// The task relaying job events to this process's websockets, when it serves HTTP.
    events: Option<tokio::task::JoinHandle<()>>,
    pool: Option<WorkerPool<ImageHandler>>,
    /// Expiry, deletions' files and orphans: every process runs it, whatever its role.
    cleanup: Arc<Cleanup>,
    shutting_down: Arc<AtomicBool>,
    /// Set to true to stop everything; dropping it (an application never run) stops the event task.
    stop: watch::Sender<bool>,
}

impl Application {
    /// Checks the settings, connects to Redis at `redis_url` (checking it suits the queue), opens
    /// storage, binds the listener. Fails with the reason when any of that is impossible.
    pub async fn build(settings: &Settings, redis_url: &str, role: Role) -> anyhow::Result<Self> {
        settings.validate()?;
        // Before anything is counted.
        crate::telemetry::recorder();
        let queue = connect_queue(settings, redis_url)?;
        let report = queue.check_server().await.with_context(|| {
            format!(
                "cannot use the Redis at {} (check redis.url, or unset it to let pixdrop start its own redis-server)",
                redact(redis_url)
            )
        })?;
        for warning in &report.warnings {
            tracing::warn!("redis: {warning}");
        }
        tracing::info!(server = %report.server, version = %report.version, url = %redact(redis_url), "redis ready");
        let storage = Storage::open(&settings.storage.dir).with_context(|| {
            format!("cannot use storage.dir {}", settings.storage.dir.display())
        })?;
        let shutting_down = Arc::new(AtomicBool::new(false));
        let (stop, stop_rx) = watch::channel(false);
        let auth = Arc::new(
            Authenticator::new(&settings.auth, &settings.server.allowed_origins)
                .context("cannot set up sign-in ([auth])")?,
        );

        let quotas = Quotas::new(
            queue.pool().clone(),
            &settings.redis.key_prefix()?,
            &settings.quotas,
        );
        let cleanup = Arc::new(Cleanup::new(
            queue.clone(),
            storage.clone(),
            quotas.clone(),
            &settings.storage,
            settings.workers.job_timeout(),
        ));
        cleanup
            .adopt_earlier_records()
            .await
            .context("cannot give earlier records their content references")?;

        let mut events = None;
        let http = if role.serves_http() {
            let listener = TcpListener::bind(&settings.server.bind)
                .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
            let port = listener.local_addr()?.port();
            let auth = web::Data::from(auth.clone());
            let state = web::Data::new(AppState {
                queue: queue.clone(),
                storage: storage.clone(),
                media: media_access(settings)?,
                quotas,
                cleanup: cleanup.clone(),
                uploads: settings.uploads.clone(),
                uploads_gate: Gate::new(
                    settings.uploads.max_concurrent,
                    settings.uploads.max_concurrent_per_client,
                ),
                min_free_bytes: settings.storage.min_free_bytes,
                shutting_down: shutting_down.clone(),
            });
            let (hub, relay) = EventHub::start(
                queue.redis_client().clone(),
                queue.keys().events().to_owned(),
                settings.websocket.event_buffer,
                stop_rx.clone(),
            );
            events = Some(relay);
            let live = web::Data::new(LiveState {
                hub,
                gate: Gate::new(
                    settings.websocket.max_sockets,
                    settings.websocket.max_sockets_per_client,
                ),
                settings: settings.websocket.clone(),
                tickets: Tickets::new(queue.pool().clone(), &settings.redis.key_prefix()?),
                stop: stop_rx.clone(),
            });
            let limits = web::Data::new(PublicLimits::new(
                &settings.uploads,
                &settings.pipeline,
                &settings.variants,
            ));
            let origins = web::Data::new(OriginPolicy::new(&settings.server));
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .app_data(live.clone())
                    .app_data(limits.clone())
                    .app_data(origins.clone())
                    .app_data(auth.clone())
                    .wrap(actix_web::middleware::from_fn(http::check_origin))
                    .wrap(actix_web::middleware::from_fn(http::catch_panics))
                    .wrap(actix_web::middleware::from_fn(http::log_request))
                    .configure(http::routes)
            })
            .listen(listener)?
            .disable_signals()
            .shutdown_timeout(settings.workers.shutdown_grace_secs)
            .run();
            tracing::info!(address = %settings.server.bind, port, "http listening");
            Some((server, port))
        } else {
            None
        };
        let pool = role.runs_workers().then(|| {
            let handler = ImageHandler::new(
                storage.clone(),
                settings.variants.clone(),
                settings.pipeline,
            );
            WorkerPool::new(queue.clone(), handler, settings.workers.clone())
        });
        let metrics = http::metrics::listener(&settings.metrics, &queue)?;
        Ok(Self {
            auth,
            http,
            metrics,
            events,
            pool,
            cleanup,
            shutting_down,
            stop,
        })
    }

    /// The request authenticator, to reload its tokens while running (SIGHUP).
    pub fn authenticator(&self) -> Arc<Authenticator> {
        self.auth.clone()
    }

    /// The HTTP port actually bound (useful with port 0), unless worker-only.
    pub fn port(&self) -> Option<u16> {
        self.http.as_ref().map(|(_, port)| *port)
    }

    /// The `metrics.bind` listener's port (useful with port 0), when set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// Runs until `shutdown` resolves, then stops gracefully.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let stop_rx = self.stop.subscribe();
        let http = self.http.map(|(server, _)| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let pool = self.pool.map(|pool| {
            let mut stop = stop_rx.clone();
            tokio::spawn(pool.run(async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        });
        let cleanup = self.cleanup.clone().spawn(stop_rx.clone());
        shutdown.await;
        tracing::info!("shutting down");
        self.shutting_down.store(true, Ordering::SeqCst);
        // Websockets close, the event relay and the pool stop.
        let _ = self.stop.send(true);
        if let Some((server, handle)) = http {
            handle.stop(true).await;
            server.await??;
        }
        if let Some(pool) = pool {
            pool.await?;
        }
        // Last, so the shutdown itself can be watched.
        if let Some((server, handle)) = metrics {
            handle.stop(true).await;
            server.await??;
        }
        if let Some(events) = self.events {
            events.await?;
        }
        cleanup.await?;
        Ok(())
    }
}

/// Media URLs: signed while sign-in is on, unless `media.public` keeps them public; originals as
/// `media.originals` says.
fn media_access(settings: &Settings) -> anyhow::Result<MediaAccess> {
    let signed = || -> anyhow::Result<Access> {
        let signer =
            UrlSigner::load_or_create(settings.media.signing_key.as_deref(), &settings.storage.dir)
                .context("cannot set up the media signing key")?;
        Ok(Access::Signed {
            signer: Arc::new(signer),
            ttl_secs: settings.media.url_ttl_secs,
        })
    };
    let variants = if settings.auth.mode == AuthMode::Off || settings.media.public {
        Access::Public
    } else {
        signed()?
    };
    let originals = match settings.media.originals {
        OriginalsAccess::Public => Some(variants.clone()),
        OriginalsAccess::Private => Some(match &variants {
            Access::Signed { .. } => variants.clone(),
            Access::Public => signed()?,
        }),
        OriginalsAccess::None => None,
    };
    Ok(MediaAccess {
        variants,
        originals,
    })
}

/// The queue these settings describe, on the Redis at `redis_url`.
pub fn connect_queue(settings: &Settings, redis_url: &str) -> anyhow::Result<Queue> {
    Queue::connect(
        redis_url,
        &settings.redis.key_prefix()?,
        settings.redis.pool_size,
        &settings.queue,
    )
}
