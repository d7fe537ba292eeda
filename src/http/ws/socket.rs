//! One open websocket: its loop over the client's messages, the events of the jobs it watches
//! (routed to its inbox by the hub), pings, resyncs, its credential's expiry and shutdown; what
//! it watches, and what it sends.

use std::collections::HashMap;
use std::time::Instant;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use tokio::sync::watch;

use super::{ClientMessage, ServerMessage};
use crate::auth::quotas::SocketPlace;
use crate::events::{Delivery, Inbox, stopped};
use crate::http::gate::Pass;
use crate::http::media::MediaAccess;
use crate::http::rate::TokenBucket;
use crate::http::settings::WebSocketSettings;
use crate::http::view::JobView;
use crate::queue::{JobId, Queue, Subject};

/// One open websocket.
pub(super) struct Socket {
    pub(super) session: Session,
    pub(super) queue: Queue,
    pub(super) media: MediaAccess,
    /// Whose jobs this socket may watch.
    pub(super) subject: Subject,
    /// When its credential lapses (Unix seconds): the socket closes then.
    pub(super) expires_at: Option<u64>,
    /// Its place in the subject's socket quota, renewed while open and given back at the end.
    pub(super) quota_place: SocketPlace,
    pub(super) settings: WebSocketSettings,
    /// The jobs this socket watches, each with the version last sent; `None` until a snapshot
    /// showed the job is the subject's: no event of it is sent before.
    pub(super) watched: HashMap<JobId, Option<u64>>,
    /// Where the hub routes the events of the watched jobs; kept watching the same ids.
    pub(super) inbox: Inbox,
    /// When the client last sent anything (a message, a pong).
    pub(super) last_heard: Instant,
    /// The client's messages per second.
    pub(super) rate: TokenBucket,
    /// Messages refused for the rate since the last accepted one.
    pub(super) refused_in_a_row: u32,
    /// A snapshot could not be read (Redis did not answer): the socket reads them again soon,
    /// whether or not the hub's subscription dropped meanwhile.
    pub(super) snapshots_owed: bool,
    /// Its place at the gate, freed when the socket ends.
    pub(super) _place: Pass,
    /// Counts it among the open websockets while it lives.
    pub(super) _open: crate::telemetry::Held,
}

/// A client still sending this many messages in a row over its rate is closed.
const MAX_REFUSED_IN_A_ROW: u32 = 3;

/// How long after a failed snapshot read the socket tries again (plus a random share of
/// `websocket.resync_spread_ms`, so sockets refused together do not retry together).
const SNAPSHOT_RETRY_AFTER_MS: u64 = 1000;

/// Resolves when a credential expiring at `expires_at` (Unix seconds) has expired; never for one
/// that does not.
async fn credential_expiry(expires_at: Option<u64>) {
    let Some(at) = expires_at else {
        return std::future::pending().await;
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at);
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left).await;
}

/// Resolves when the resync scheduled in `at` is due; never when none is.
async fn resync_due(at: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match at {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Why a socket ends.
enum End {
    /// The client left, or cannot be written to: nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
}

impl Socket {
    pub(super) async fn run(
        mut self,
        mut messages: AggregatedMessageStream,
        mut stop: watch::Receiver<bool>,
        initial: Vec<String>,
    ) {
        let mut ping = tokio::time::interval(self.settings.ping_interval());
        ping.reset();
        let mut end = self.subscribe(initial).await.err();
        // After Redis comes back every socket must re-read its jobs; each does so at a random
        // moment within the spread, so they do not all ask Redis at once.
        let mut resync_at = None;
        let expiry = credential_expiry(self.expires_at);
        tokio::pin!(expiry);
        let mut renew = tokio::time::interval(SocketPlace::RENEW_EVERY);
        renew.reset();
        while end.is_none() {
            if std::mem::take(&mut self.snapshots_owed) && resync_at.is_none() {
                let delay = SNAPSHOT_RETRY_AFTER_MS
                    + rand::random_range(0..=self.settings.resync_spread_ms);
                resync_at = Some(Box::pin(tokio::time::sleep(
                    std::time::Duration::from_millis(delay),
                )));
            }
            let step = tokio::select! {
                message = messages.recv() => self.on_message(message).await,
                delivery = self.inbox.recv() => match delivery {
                    Delivery::Resync => {
                        let spread = self.settings.resync_spread_ms;
                        let delay = rand::random_range(0..=spread);
                        resync_at = Some(Box::pin(tokio::time::sleep(
                            std::time::Duration::from_millis(delay),
                        )));
                        Ok(())
                    }
                    other => self.on_delivery(other).await,
                },
                _ = resync_due(&mut resync_at) => {
                    resync_at = None;
                    self.resync().await
                }
                _ = ping.tick() => self.on_ping_tick().await,
                () = &mut expiry => Err(End::Close(CloseCode::Policy, "credential expired")),
                _ = renew.tick() => {
                    self.quota_place.renew().await;
                    Ok(())
                }
                _ = stopped(&mut stop) => Err(End::Close(CloseCode::Away, "pixdrop is shutting down")),
            };
            end = step.err();
        }
        if let Some(End::Close(code, reason)) = end {
            let reason = CloseReason {
                code,
                description: Some(reason.to_owned()),
            };
            let _ = self.session.close(Some(reason)).await;
        }
        self.quota_place.give_back().await;
    }

    async fn on_message(
        &mut self,
        message: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
    ) -> Result<(), End> {
        self.last_heard = Instant::now();
        match message {
            None => Err(End::Gone),
            Some(Ok(AggregatedMessage::Text(text))) => self.on_text(&text).await,
            Some(Ok(AggregatedMessage::Binary(_))) => {
                self.error(
                    "bad-message",
                    "binary messages are not understood; send JSON text".into(),
                    None,
                )
                .await
            }
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                self.session.pong(&bytes).await.map_err(|_| End::Gone)
            }
            Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
            Some(Ok(AggregatedMessage::Close(_))) => Err(End::Close(CloseCode::Normal, "bye")),
            Some(Err(actix_ws::ProtocolError::Overflow)) => Err(End::Close(
                CloseCode::Size,
                "message too large (see websocket.max_message_bytes)",
            )),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket protocol error");
                Err(End::Close(CloseCode::Protocol, "websocket protocol error"))
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        if !self.rate.take() {
            self.refused_in_a_row += 1;
            if self.refused_in_a_row >= MAX_REFUSED_IN_A_ROW {
                return Err(End::Close(CloseCode::Policy, "too many messages"));
            }
            let detail = format!(
                "at most {} messages a second; this one was ignored, wait {} ms",
                self.settings.max_messages_per_sec,
                self.rate.wait().as_millis().max(1)
            );
            return self.error("rate-limited", detail, None).await;
        }
        self.refused_in_a_row = 0;
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(m) if !m.subscribe.is_empty() || !m.unsubscribe.is_empty() => m,
            Ok(_) => {
                let detail = r#"nothing to do: send {"subscribe": ["job id", ...]} or {"unsubscribe": [...]}"#;
                return self.error("bad-message", detail.into(), None).await;
            }
            Err(e) => {
                let detail = format!(
                    r#"expected {{"subscribe": ["job id", ...]}} or {{"unsubscribe": [...]}}: {e}"#
                );
                return self.error("bad-message", detail, None).await;
            }
        };
        let ids = message.subscribe.len() + message.unsubscribe.len();
        if ids > self.settings.max_ids_per_message {
            let detail = format!(
                "at most {} job ids in one message (this one has {ids}); send them in parts",
                self.settings.max_ids_per_message
            );
            return self.error("too-many-ids", detail, None).await;
        }
        for raw in &message.unsubscribe {
            if let Ok(id) = raw.parse::<JobId>() {
                self.unwatch(id);
            }
        }
        self.subscribe(message.subscribe).await
    }

    /// Starts watching `raw` ids and sends their snapshots.
    async fn subscribe(&mut self, raw: Vec<String>) -> Result<(), End> {
        let mut ids = Vec::with_capacity(raw.len());
        for raw in raw {
            match raw.parse::<JobId>() {
                Ok(id) => {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                Err(_) => {
                    let detail = format!("{raw:?} is not a job id");
                    self.error("not-found", detail, Some(raw)).await?;
                }
            }
        }
        let new = ids.iter().filter(|id| !self.watched.contains_key(id));
        if self.watched.len() + new.count() > self.settings.max_subscriptions {
            let detail = format!(
                "a socket may watch at most {} jobs; unsubscribe from finished ones first",
                self.settings.max_subscriptions
            );
            return self.error("too-many-subscriptions", detail, None).await;
        }
        for id in &ids {
            self.watched.entry(*id).or_insert(None);
            // Before the snapshot is read, so no event between the two is missed.
            self.inbox.watch(*id);
        }
        self.send_snapshots(ids).await
    }

    /// Sends the current state of `ids`. A job that no longer exists is no longer watched. When
    /// Redis cannot answer, the jobs stay watched and every watched job is read again a second or
    /// so later (and on, until Redis answers), or at the hub's resync if that comes first.
    async fn send_snapshots(&mut self, ids: Vec<JobId>) -> Result<(), End> {
        if ids.is_empty() {
            return Ok(());
        }
        let records = match self.queue.jobs(&ids).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read job snapshots");
                self.snapshots_owed = true;
                let detail = "cannot read the jobs' state now (Redis is unavailable); \
                              snapshots follow when it answers again";
                return self.error("unavailable", detail.into(), None).await;
            }
        };
        for (id, record) in ids.into_iter().zip(records) {
            // Another subject's job is as unknown as one that never existed.
            let Some(record) = record.filter(|r| r.subject == self.subject) else {
                self.unwatch(id);
                let detail = format!("no job {id} (unknown, or expired)");
                self.error("not-found", detail, Some(id.to_string()))
                    .await?;
                continue;
            };
            self.watched.insert(id, Some(record.version));
            let snapshot = JobView::from_record(&record, &self.media);
            self.send(&ServerMessage::Snapshot(snapshot)).await?;
        }
        Ok(())
    }

    /// Every watched job's state, afresh.
    async fn resync(&mut self) -> Result<(), End> {
        let ids: Vec<JobId> = self.watched.keys().copied().collect();
        // Chunks keep each Redis round trip, and the time between two polls of the socket, short.
        for chunk in ids.chunks(100) {
            self.send_snapshots(chunk.to_vec()).await?;
        }
        Ok(())
    }

    fn unwatch(&mut self, id: JobId) {
        self.watched.remove(&id);
        self.inbox.unwatch(id);
    }

    async fn on_delivery(&mut self, received: Delivery) -> Result<(), End> {
        match received {
            Delivery::Event(event) => {
                let Some(Some(sent)) = self.watched.get_mut(&event.id) else {
                    return Ok(());
                };
                // Already in the snapshot this socket got (or an older event from before it).
                if event.version != 0 && event.version <= *sent {
                    return Ok(());
                }
                *sent = event.version;
                self.send(&ServerMessage::Event(JobView::from_event(
                    &event,
                    &self.media,
                )))
                .await
            }
            Delivery::Deleted(id) => {
                if !self.watched.contains_key(&id) {
                    return Ok(());
                }
                self.unwatch(id);
                self.send(&ServerMessage::Deleted { id }).await
            }
            // `run` schedules these, spread out; one arriving here is read at once.
            Delivery::Resync => self.resync().await,
            // This socket alone fell behind: no crowd to spread, so at once.
            Delivery::Lagged => {
                tracing::debug!("websocket lagged; sending snapshots");
                self.resync().await
            }
        }
    }

    async fn on_ping_tick(&mut self) -> Result<(), End> {
        if self.last_heard.elapsed() >= self.settings.idle_timeout() {
            return Err(End::Close(CloseCode::Policy, "no answer to pings"));
        }
        self.session.ping(b"").await.map_err(|_| End::Gone)
    }

    async fn error(
        &mut self,
        code: &'static str,
        detail: String,
        id: Option<String>,
    ) -> Result<(), End> {
        self.send(&ServerMessage::Error { code, detail, id }).await
    }

    /// Sends one message. A client that has not taken it within the idle timeout is gone (the
    /// session's buffer stays full when the client stops reading).
    async fn send(&mut self, message: &ServerMessage) -> Result<(), End> {
        let text = serde_json::to_string(message).expect("messages serialise");
        match tokio::time::timeout(self.settings.idle_timeout(), self.session.text(text)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Close(CloseCode::Policy, "not reading messages")),
        }
    }
}
