//! The one Redis SUBSCRIBE connection a process holds, and the in-process fan-out of job events to
//! every websocket of the process.
//!
//! Every queue transition publishes one JSON event on the events channel (see
//! `queue/lua/prelude.lua`). `EventHub::start` spawns the task that listens there, decodes each
//! event once and broadcasts it; each socket holds a `broadcast::Receiver` and keeps the events of
//! the jobs it watches. A socket that falls behind the broadcast's buffer is told it lagged (by
//! tokio's broadcast) and re-reads its jobs' state, so a slow browser never holds back the others.
//!
//! Redis may drop the subscription (restart, failover, network). The task then reconnects with
//! backoff and, once subscribed again, broadcasts `Resync`: events published meanwhile are lost to
//! pub/sub, so every socket re-reads the current state of its jobs. A ping every
//! `PING_EVERY` finds a connection that died without closing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::queue::{JobDeleted, JobEvent, JobId, ReconnectDelay};

/// What the hub tells every socket.
#[derive(Debug, Clone)]
pub enum Broadcast {
    /// A job changed.
    Event(Arc<JobEvent>),
    /// A job was removed for good.
    Deleted(JobId),
    /// The subscription was (re-)established: events may have been missed, so re-read every
    /// watched job's state.
    Resync,
}

/// The handle sockets subscribe through. Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<Broadcast>,
}

/// How often the listening connection is checked with a PING, and how long its answer may take.
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl EventHub {
    /// Starts listening on `channel`; the task ends when `stop` turns true. `buffer` (checked
    /// setting `websocket.event_buffer`) is how many events a socket may fall behind before it
    /// counts as lagging.
    pub fn start(
        client: redis::Client,
        channel: String,
        buffer: usize,
        stop: watch::Receiver<bool>,
    ) -> (Self, JoinHandle<()>) {
        let (sender, _) = broadcast::channel(buffer);
        let task = tokio::spawn(listen(client, channel, sender.clone(), stop));
        (Self { sender }, task)
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Broadcast> {
        self.sender.subscribe()
    }
}

/// Holds the subscription until `stop`, reconnecting whenever it is lost.
async fn listen(
    client: redis::Client,
    channel: String,
    sender: broadcast::Sender<Broadcast>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = ReconnectDelay::new();
    loop {
        match subscribe(&client, &channel).await {
            Ok(pubsub) => {
                tracing::info!(%channel, "listening for job events");
                delay.reset();
                // No receivers (no socket open yet) is not an error.
                let _ = sender.send(Broadcast::Resync);
                if relay(pubsub, &sender, &mut stop).await == Relayed::Stopped {
                    return;
                }
                tracing::warn!(%channel, "job events subscription lost; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to job events; retrying"),
        }
        if !delay.wait(&mut stop).await {
            return;
        }
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "timed out subscribing",
            )))
        })
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not in the caller's `select!`.
    let _ = stop.wait_for(|s| *s).await;
}

#[derive(Debug, PartialEq, Eq)]
enum Relayed {
    Stopped,
    ConnectionLost,
}

/// Broadcasts every event until the connection is lost or `stop` turns true.
async fn relay(
    pubsub: redis::aio::PubSub,
    sender: &broadcast::Sender<Broadcast>,
    stop: &mut watch::Receiver<bool>,
) -> Relayed {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return Relayed::ConnectionLost };
                let payload = message.get_payload_bytes();
                match serde_json::from_slice::<JobEvent>(payload) {
                    Ok(event) => {
                        let _ = sender.send(Broadcast::Event(Arc::new(event)));
                    }
                    Err(e) => match serde_json::from_slice::<JobDeleted>(payload) {
                        Ok(JobDeleted { id, deleted: true }) => {
                            let _ = sender.send(Broadcast::Deleted(id));
                        }
                        _ => tracing::warn!(error = %e, "undecodable job event skipped"),
                    },
                }
            }
            _ = ping.tick() => {
                let answered = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    return Relayed::ConnectionLost;
                }
            }
            _ = stopped(stop) => return Relayed::Stopped,
        }
    }
}
