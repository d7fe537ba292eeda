//! The one Redis SUBSCRIBE connection a process holds, and the in-process routing of job events to
//! the websockets watching each job.
//!
//! Every queue transition publishes one JSON event on the events channel (see
//! `queue/lua/prelude.lua`). `EventHub::start` spawns the task that listens there and decodes each
//! event once. Each socket holds an [`Inbox`] and tells the hub which jobs it watches; the hub
//! keeps, per job, the sockets watching it, so an event costs a map lookup and one send per
//! watcher, however many sockets are open. An inbox holds `websocket.event_buffer` deliveries; a
//! socket that falls that far behind is told it lagged and re-reads its jobs' state, so a slow
//! browser never holds back the others. An inbox may also watch every job (the admin
//! dashboard's stream); those few are kept apart, so other sockets' routing stays a lookup.
//!
//! Redis may drop the subscription (restart, failover, network). The task then reconnects with
//! backoff and, once subscribed again, tells every inbox to resync: events published meanwhile
//! are lost to pub/sub, so every socket re-reads the current state of its jobs. A ping every
//! `PING_EVERY` finds a connection that died without closing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::queue::{JobDeleted, JobEvent, JobId, ReconnectDelay};

/// What the hub hands a socket.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A watched job changed.
    Event(Arc<JobEvent>),
    /// A watched job was removed for good.
    Deleted(JobId),
    /// The subscription was (re-)established: events may have been missed, so re-read every
    /// watched job's state.
    Resync,
    /// This socket fell more than its buffer behind and missed events: re-read at once.
    Lagged,
}

/// The handle sockets open their inboxes through. Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    routes: Arc<Routes>,
}

/// Who watches what.
struct Routes {
    /// Per job, the inboxes watching it, by inbox number.
    by_job: Mutex<HashMap<JobId, HashMap<u64, Arc<Mailbox>>>>,
    /// Every open inbox, for resyncs.
    all: Mutex<HashMap<u64, Arc<Mailbox>>>,
    /// The inboxes watching every job.
    everything: Mutex<HashMap<u64, Arc<Mailbox>>>,
    next: AtomicU64,
    buffer: usize,
}

/// The sending side of one inbox.
struct Mailbox {
    sender: mpsc::Sender<Delivery>,
    /// Set when a delivery did not fit; the inbox then drops what it holds and says `Lagged`.
    lagged: AtomicBool,
    wake: Notify,
}

impl Mailbox {
    fn deliver(&self, delivery: Delivery) {
        if self.sender.try_send(delivery).is_err() {
            self.lagged.store(true, Ordering::Release);
            self.wake.notify_one();
        }
    }
}

/// One socket's events: those of the jobs it watches, in the order they were published.
/// Dropping it stops every route to it.
pub struct Inbox {
    number: u64,
    mailbox: Arc<Mailbox>,
    receiver: mpsc::Receiver<Delivery>,
    routes: Arc<Routes>,
    watching: HashSet<JobId>,
}

impl Inbox {
    /// Routes `job`'s events here from now on.
    pub fn watch(&mut self, job: JobId) {
        if self.watching.insert(job) {
            lock(&self.routes.by_job)
                .entry(job)
                .or_default()
                .insert(self.number, self.mailbox.clone());
        }
    }

    /// Routes every job's events here from now on.
    pub fn watch_everything(&mut self) {
        lock(&self.routes.everything).insert(self.number, self.mailbox.clone());
    }

    /// Stops routing `job`'s events here.
    pub fn unwatch(&mut self, job: JobId) {
        if self.watching.remove(&job) {
            self.routes.forget(job, self.number);
        }
    }

    /// The next delivery. The inbox holds its own sender, so this waits as long as nothing is
    /// routed here: sockets end on the process's stop signal, not on the hub's.
    pub async fn recv(&mut self) -> Delivery {
        loop {
            if self.mailbox.lagged.swap(false, Ordering::Acquire) {
                // What is queued is older than the snapshots the lag triggers: drop it.
                while self.receiver.try_recv().is_ok() {}
                return Delivery::Lagged;
            }
            tokio::select! {
                biased;
                () = self.mailbox.wake.notified() => {}
                delivery = self.receiver.recv() => {
                    if let Some(delivery) = delivery {
                        return delivery;
                    }
                }
            }
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        for job in self.watching.drain() {
            self.routes.forget(job, self.number);
        }
        lock(&self.routes.all).remove(&self.number);
        lock(&self.routes.everything).remove(&self.number);
    }
}

impl Routes {
    fn forget(&self, job: JobId, number: u64) {
        let mut by_job = lock(&self.by_job);
        if let Some(watchers) = by_job.get_mut(&job) {
            watchers.remove(&number);
            if watchers.is_empty() {
                by_job.remove(&job);
            }
        }
    }

    /// Hands `delivery` to every inbox watching `job`.
    fn route(&self, job: JobId, delivery: Delivery) {
        // Sent outside the lock: a delivery never waits, but cloning the few watchers keeps the
        // lock to a lookup.
        let mut watchers: Vec<Arc<Mailbox>> = match lock(&self.by_job).get(&job) {
            Some(watchers) => watchers.values().cloned().collect(),
            None => Vec::new(),
        };
        watchers.extend(lock(&self.everything).values().cloned());
        for mailbox in watchers {
            mailbox.deliver(delivery.clone());
        }
    }

    fn resync_all(&self) {
        let all: Vec<Arc<Mailbox>> = lock(&self.all).values().cloned().collect();
        for mailbox in all {
            mailbox.deliver(Delivery::Resync);
        }
    }

    /// How many jobs have a watcher.
    #[cfg(test)]
    fn watched_jobs(&self) -> usize {
        lock(&self.by_job).len()
    }
}

/// The routes stay usable after a panic elsewhere: every change to them is a single insert or
/// remove, never left half done.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How often the listening connection is checked with a PING, and how long its answer may take.
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl EventHub {
    /// Starts listening on `channel`; the task ends when `stop` turns true. `buffer` (checked
    /// setting `websocket.event_buffer`) is how many deliveries a socket may fall behind before
    /// it counts as lagging.
    pub fn start(
        client: redis::Client,
        channel: String,
        buffer: usize,
        stop: watch::Receiver<bool>,
    ) -> (Self, JoinHandle<()>) {
        let hub = Self::new(buffer);
        let task = tokio::spawn(listen(client, channel, hub.routes.clone(), stop));
        (hub, task)
    }

    /// A hub fed by nothing yet: `start` connects one to Redis.
    fn new(buffer: usize) -> Self {
        Self {
            routes: Arc::new(Routes {
                by_job: Mutex::default(),
                all: Mutex::default(),
                everything: Mutex::default(),
                next: AtomicU64::new(0),
                buffer: buffer.max(1),
            }),
        }
    }

    /// An inbox watching nothing yet.
    pub fn inbox(&self) -> Inbox {
        let (sender, receiver) = mpsc::channel(self.routes.buffer);
        let mailbox = Arc::new(Mailbox {
            sender,
            lagged: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let number = self.routes.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.routes.all).insert(number, mailbox.clone());
        Inbox {
            number,
            mailbox,
            receiver,
            routes: self.routes.clone(),
            watching: HashSet::new(),
        }
    }
}

/// Holds the subscription until `stop`, reconnecting whenever it is lost.
async fn listen(
    client: redis::Client,
    channel: String,
    routes: Arc<Routes>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = ReconnectDelay::new();
    loop {
        match subscribe(&client, &channel).await {
            Ok(pubsub) => {
                tracing::info!(%channel, "listening for job events");
                delay.reset();
                routes.resync_all();
                if relay(pubsub, &routes, &mut stop).await == Relayed::Stopped {
                    return;
                }
                tracing::warn!(%channel, "job events subscription lost; resubscribing");
                crate::telemetry::redis_reconnect("events");
            }
            Err(e) => {
                crate::telemetry::redis_error("events");
                tracing::warn!(error = %e, "cannot subscribe to job events; retrying")
            }
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

/// Routes every event until the connection is lost or `stop` turns true.
async fn relay(
    pubsub: redis::aio::PubSub,
    routes: &Routes,
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
                    Ok(event) => routes.route(event.id, Delivery::Event(Arc::new(event))),
                    Err(e) => match serde_json::from_slice::<JobDeleted>(payload) {
                        Ok(JobDeleted { id, deleted: true }) => {
                            routes.route(id, Delivery::Deleted(id));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: JobId, version: u64) -> Delivery {
        let json = serde_json::json!({
            "id": id, "state": "active", "version": version, "attempts": 1,
            "max_attempts": 3, "progress": 10, "step": "decoded", "updated_at": 0,
        });
        match serde_json::from_value::<JobEvent>(json) {
            Ok(e) => Delivery::Event(Arc::new(e)),
            Err(e) => panic!("test event does not parse: {e}"),
        }
    }

    #[tokio::test]
    async fn an_event_reaches_only_the_inboxes_watching_its_job() {
        // Proves the routing: watchers of the job get it, others get nothing, and unwatching
        // or dropping an inbox removes its routes.
        let hub = EventHub::new(8);
        let (a, b) = (JobId::new(), JobId::new());
        let mut watches_a = hub.inbox();
        let mut watches_b = hub.inbox();
        let mut watches_both = hub.inbox();
        watches_a.watch(a);
        watches_b.watch(b);
        watches_both.watch(a);
        watches_both.watch(b);
        assert_eq!(hub.routes.watched_jobs(), 2);
        hub.routes.route(a, event(a, 1));
        let got = |inbox: &mut Inbox| match inbox.receiver.try_recv() {
            Ok(Delivery::Event(e)) => Some(e.id),
            _ => None,
        };
        assert_eq!(got(&mut watches_a), Some(a));
        assert_eq!(got(&mut watches_both), Some(a));
        assert_eq!(got(&mut watches_b), None);
        watches_both.unwatch(a);
        hub.routes.route(a, event(a, 2));
        assert_eq!(got(&mut watches_both), None);
        assert_eq!(got(&mut watches_a), Some(a));
        drop(watches_a);
        assert_eq!(hub.routes.watched_jobs(), 1, "a's last watcher is gone");
        drop((watches_b, watches_both));
        assert_eq!(hub.routes.watched_jobs(), 0);
        assert!(lock(&hub.routes.all).is_empty());
    }

    #[test]
    fn an_inbox_watching_everything_gets_every_jobs_events_and_stops_when_dropped() {
        let hub = EventHub::new(8);
        let (a, b) = (JobId::new(), JobId::new());
        let mut dashboard = hub.inbox();
        dashboard.watch_everything();
        let mut watches_a = hub.inbox();
        watches_a.watch(a);
        hub.routes.route(a, event(a, 1));
        hub.routes.route(b, event(b, 1));
        let got = |inbox: &mut Inbox| match inbox.receiver.try_recv() {
            Ok(Delivery::Event(e)) => Some(e.id),
            _ => None,
        };
        assert_eq!(got(&mut dashboard), Some(a));
        assert_eq!(got(&mut dashboard), Some(b));
        assert_eq!(got(&mut dashboard), None);
        assert_eq!(got(&mut watches_a), Some(a));
        assert_eq!(got(&mut watches_a), None, "b is not a's");
        drop(dashboard);
        assert!(lock(&hub.routes.everything).is_empty());
    }

    #[tokio::test]
    async fn an_inbox_that_falls_behind_is_told_it_lagged_and_others_are_not_held_back() {
        // Proves a full inbox does not block the routing: it drops what it held and reports a
        // lag (its socket then re-reads its jobs), while a reading inbox gets every event.
        let hub = EventHub::new(2);
        let job = JobId::new();
        let mut slow = hub.inbox();
        let mut fast = hub.inbox();
        slow.watch(job);
        fast.watch(job);
        for version in 1..=5 {
            hub.routes.route(job, event(job, version));
            assert!(matches!(fast.recv().await, Delivery::Event(_)));
        }
        assert!(matches!(slow.recv().await, Delivery::Lagged));
        hub.routes.route(job, event(job, 6));
        match slow.recv().await {
            Delivery::Event(e) => assert_eq!(e.version, 6),
            other => panic!("expected the next event, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_resync_reaches_every_inbox_whatever_it_watches() {
        // Proves resubscribing after Redis comes back asks every socket to re-read.
        let hub = EventHub::new(4);
        let mut idle = hub.inbox();
        let mut watching = hub.inbox();
        watching.watch(JobId::new());
        hub.routes.resync_all();
        assert!(matches!(idle.recv().await, Delivery::Resync));
        assert!(matches!(watching.recv().await, Delivery::Resync));
    }
}
