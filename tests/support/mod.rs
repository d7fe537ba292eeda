//! Shared by the integration tests: a private `redis-server` per test, and quick queue settings.
#![allow(dead_code)]

mod proxy;
// Each test crate uses a different part of this module.
#[allow(unused_imports)]
pub use proxy::RedisProxy;

use std::time::Duration;

use futures_util::StreamExt;
use pixdrop::queue::{JobEvent, KeyPrefix, Queue, QueueSettings, WorkerSettings};
use pixdrop::redis_server::{Listen, RedisServer, RedisServerOptions};
use tokio::sync::mpsc;

/// A `redis-server` of the test's own, on a free port, with its AOF in a temp dir. Killed on drop.
pub struct TestRedis {
    pub server: RedisServer,
    _dir: tempfile::TempDir,
}

impl TestRedis {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = RedisServer::start(RedisServerOptions {
            listen: Listen::LoopbackPort,
            binary: "redis-server".into(),
            dir: dir.path().to_path_buf(),
            appendfsync: "everysec",
            inherit_fd: None,
        })
        .expect("redis-server must be installed for the tests (apt-get install redis-server)");
        Self { server, _dir: dir }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A queue on this server with the test settings.
    pub fn queue(&self) -> Queue {
        self.queue_with(quick_settings())
    }

    pub fn queue_with(&self, settings: QueueSettings) -> Queue {
        let prefix = KeyPrefix::parse("pixdrop").unwrap();
        Queue::connect(&self.url(), &prefix, 4, &settings).expect("queue")
    }

    /// Lets the reaper lock lapse, so the next `reap_dead` runs at once.
    pub async fn release_reaper_lock(&self, queue: &Queue) {
        let () = redis::AsyncCommands::del(&mut self.conn().await, queue.keys().reaper_lock())
            .await
            .unwrap();
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// Queue timings shrunk so recovery and retries happen within a test's patience.
pub fn quick_settings() -> QueueSettings {
    QueueSettings {
        max_attempts: 3,
        backoff_base_ms: 50,
        backoff_factor: 2.0,
        backoff_max_ms: 400,
        heartbeat_interval_ms: 100,
        heartbeat_ttl_ms: 600,
        reaper_interval_ms: 200,
        scheduler_interval_ms: 50,
        claim_block_secs: 0.3,
        ..QueueSettings::default()
    }
}

pub fn workers(concurrency: usize) -> WorkerSettings {
    WorkerSettings {
        concurrency: Some(concurrency),
        job_timeout_secs: 30,
        shutdown_grace_secs: 5,
        ..WorkerSettings::default()
    }
}

/// Every event the queue publishes, decoded, from the moment this returns.
pub async fn subscribe(queue: &Queue) -> mpsc::UnboundedReceiver<JobEvent> {
    let mut pubsub = queue.redis_client().get_async_pubsub().await.unwrap();
    pubsub.subscribe(queue.keys().events()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let payload: String = message.get_payload().unwrap();
            let event: JobEvent = serde_json::from_str(&payload)
                .unwrap_or_else(|e| panic!("undecodable event {payload}: {e}"));
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    rx
}

/// Polls `check` every 20 ms until it is true, failing the test after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
