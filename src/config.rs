//! Typed settings: built-in defaults, then `config.toml` (or `--config PATH`), then environment
//! variables `PIXDROP__SECTION__KEY` (e.g. `PIXDROP__REDIS__URL`). Every field has a default, so
//! a missing file is not an error unless its path was given explicitly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::pipeline::{Limits, VariantSpec};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub workers: WorkerSettings,
    pub queue: QueueSettings,
    pub storage: StorageSettings,
    pub uploads: UploadSettings,
    pub websocket: WebSocketSettings,
    /// Limits checked from an image's header before it is decoded.
    pub pipeline: Limits,
    /// The WebP variants made of every upload (`[[variants]]` tables).
    pub variants: Vec<VariantSpec>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::default(),
            redis: RedisSettings::default(),
            workers: WorkerSettings::default(),
            queue: QueueSettings::default(),
            storage: StorageSettings::default(),
            uploads: UploadSettings::default(),
            websocket: WebSocketSettings::default(),
            pipeline: Limits::default(),
            variants: VariantSpec::defaults(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// Largest accepted file.
    pub max_file_bytes: u64,
    /// Most files in one request.
    pub max_files: usize,
    /// Largest request body, all parts together.
    pub max_body_bytes: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            max_file_bytes: 50 * 1024 * 1024,
            max_files: 20,
            max_body_bytes: 200 * 1024 * 1024,
        }
    }
}

/// The live-progress websocket (`GET /ws`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketSettings {
    /// How often the server pings each socket.
    pub ping_interval_secs: u64,
    /// A socket silent this long (no pong, no message) is closed.
    pub idle_timeout_secs: u64,
    /// Most jobs one socket may watch at once.
    pub max_subscriptions: usize,
    /// Largest message a client may send.
    pub max_message_bytes: usize,
    /// Events held for each socket before it counts as lagging and gets fresh snapshots instead.
    pub event_buffer: usize,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            ping_interval_secs: 10,
            idle_timeout_secs: 30,
            max_subscriptions: 1000,
            max_message_bytes: 64 * 1024,
            event_buffer: 1024,
        }
    }
}

impl WebSocketSettings {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP server listens on.
    pub bind: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://`, `rediss://` (TLS) or `redis+unix://`, with user and password if needed. Unset or
    /// empty: pixdrop starts and owns its own `redis-server`.
    pub url: Option<String>,
    /// Every key starts with `{prefix}:`; the braces make it a Redis Cluster hash tag, so all of
    /// pixdrop's keys live in one slot and every script is cluster-safe.
    pub key_prefix: String,
    /// Connections in the shared pool (HTTP handlers, scheduler, reaper). Workers hold their own.
    pub pool_size: usize,
    /// The `redis-server` binary started when no `url` is set.
    pub server_binary: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "pixdrop".into(),
            pool_size: 16,
            server_binary: "redis-server".into(),
        }
    }
}

impl RedisSettings {
    /// The configured URL, treating an empty string (as an environment override may give) as unset.
    pub fn external_url(&self) -> Option<&str> {
        self.url.as_deref().map(str::trim).filter(|u| !u.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Worker tasks in this process (each holds one blocking Redis connection).
    pub concurrency: usize,
    /// A job running longer than this fails with a transient `timeout` error and is retried.
    pub job_timeout_secs: u64,
    /// On SIGTERM/SIGINT, in-flight jobs get this long to finish before they are handed back.
    pub shutdown_grace_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            job_timeout_secs: 120,
            shutdown_grace_secs: 20,
        }
    }
}

impl WorkerSettings {
    pub fn job_timeout(&self) -> Duration {
        Duration::from_secs(self.job_timeout_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Runs of a job before it is failed for good (stalls are counted separately).
    pub max_attempts: u32,
    /// First retry delay; each further retry multiplies it by `backoff_factor`, up to the cap.
    pub backoff_base_ms: u64,
    pub backoff_factor: f64,
    pub backoff_max_ms: u64,
    /// Share of each delay that is randomised (0 = none, 1 = anywhere from 0 to the full delay).
    pub backoff_jitter: f64,
    /// How often an instance renews its heartbeat, and how long the heartbeat lives.
    pub heartbeat_interval_ms: u64,
    pub heartbeat_ttl_ms: u64,
    /// How often the reaper looks for instances whose heartbeat expired.
    pub reaper_interval_ms: u64,
    /// A job whose worker died more often than this is failed as a poison pill.
    pub max_stalls: u32,
    /// How often due retries are moved back to the waiting list.
    pub scheduler_interval_ms: u64,
    /// How long finished job records are kept before Redis expires them.
    pub completed_retention_secs: u64,
    pub failed_retention_secs: u64,
    /// How long a worker's BLMOVE blocks before it looks around (shutdown, reconnect).
    pub claim_block_secs: f64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base_ms: 1_000,
            backoff_factor: 2.0,
            backoff_max_ms: 300_000,
            backoff_jitter: 0.5,
            heartbeat_interval_ms: 2_000,
            heartbeat_ttl_ms: 10_000,
            reaper_interval_ms: 5_000,
            max_stalls: 3,
            scheduler_interval_ms: 500,
            completed_retention_secs: 86_400,
            failed_retention_secs: 7 * 86_400,
            claim_block_secs: 2.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Originals, variants and the embedded Redis's data live under this directory.
    pub dir: PathBuf,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("uploads"),
        }
    }
}

impl Settings {
    /// Loads defaults, then the file (required only when `path` was given), then the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let (file, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("config.toml"), false),
        };
        let built = config::Config::builder()
            .add_source(config::File::from(file.as_path()).required(required))
            .add_source(
                config::Environment::with_prefix("PIXDROP")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .with_context(|| format!("failed to read settings from {}", file.display()))?;
        built.try_deserialize().with_context(|| {
            format!(
                "invalid settings in {} or PIXDROP__* variables",
                file.display()
            )
        })
    }
}
