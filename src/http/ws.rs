//! `GET /ws`: live job progress over a websocket.
//!
//! With sign-in on, a socket is opened with `?ticket=...` (from `POST /ws/ticket`: browsers cannot
//! set headers on a websocket) or an `Authorization: Bearer` header, and may watch only its
//! subject's jobs: another's answers `not-found`, as an unknown id does. It is closed (1008) when
//! its credential expires.
//!
//! A client watches jobs by sending `{"subscribe": ["id", ...]}` (or with `?job=ID` in the URL) and
//! stops with `{"unsubscribe": [...]}`. For each job it watches it first gets a `snapshot` (the job
//! status of `GET /jobs/{id}`), then an `event` for every later change, in order. Both are a
//! [`JobView`]; an event leaves out only the upload's fields, which never change, so a page merges
//! each event over its snapshot and renders both the same way. Problems with a message come
//! back as an `error` message; the socket stays open.
//!
//! Each socket is one task on the HTTP worker's thread. It reads the process's event broadcast (see
//! `events.rs`) and keeps only the jobs it watches. Every snapshot and event carries the job's
//! `version`; an event already reflected in the snapshot sent before it is skipped, so a client
//! never sees a job go back in time. When the socket lags behind the broadcast, or the hub
//! resubscribed to Redis (events may have been lost), it sends fresh snapshots instead.
//!
//! The server pings every `ping_interval`; a socket silent for `idle_timeout` is closed, as is one
//! that cannot take messages for that long. On shutdown every socket is closed with 1001 (going
//! away), so a graceful stop never waits on open sockets.

use std::collections::HashMap;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::AppState;
use super::caller::{Caller, refused};
use super::gate::{Busy, Gate, Pass};
use super::media::MediaAccess;
use super::problem::Problem;
use super::rate::TokenBucket;
use super::settings::WebSocketSettings;
use super::view::JobView;
use crate::auth::quotas::SocketPlace;
use crate::auth::tickets::{TICKET_TTL, Tickets};
use crate::auth::{AuthError, Authenticator, Credential};
use crate::events::{Broadcast, EventHub, stopped};
use crate::queue::{JobId, Queue, Subject};

/// What the websocket route needs beyond `AppState`.
pub struct LiveState {
    pub hub: EventHub,
    /// Open sockets, in all and per client.
    pub gate: Gate,
    pub settings: WebSocketSettings,
    /// Single-use tickets a browser opens its socket with.
    pub tickets: Tickets,
    /// Turns true when the process shuts down: every socket closes.
    pub stop: watch::Receiver<bool>,
}

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    unsubscribe: Vec<String>,
}

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerMessage {
    /// The whole job, as `GET /jobs/{id}` gives it.
    Snapshot(JobView),
    /// A change: the same shape, without the upload's fields.
    Event(JobView),
    Error {
        code: &'static str,
        detail: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

/// `POST /ws/ticket`: a ticket for one websocket of the caller, usable once within 30 s.
pub async fn ticket(caller: Caller, live: web::Data<LiveState>) -> Result<HttpResponse, Problem> {
    let ticket = live.tickets.issue(&caller.0).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot issue a websocket ticket");
        Problem::unavailable("cannot issue a ticket now (Redis is unavailable); try again shortly")
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "ticket": ticket, "expires_in": TICKET_TTL.as_secs() })))
}

/// Who opens the socket: anyone while sign-in is off; else the holder of the `?ticket=`, or of
/// the `Authorization` header.
async fn socket_caller(
    req: &HttpRequest,
    ticket: Option<&str>,
    auth: &Authenticator,
    tickets: &Tickets,
) -> Result<Credential, Problem> {
    if auth.mode() == crate::auth::AuthMode::Off {
        return Ok(Credential::anonymous());
    }
    let Some(ticket) = ticket else {
        let header = req.headers().get(actix_web::http::header::AUTHORIZATION);
        return auth
            .authenticate(header.map(|h| h.as_bytes()))
            .await
            .map_err(|e| match e {
                AuthError::Missing => refused(AuthError::invalid(
                    "sign-in required: open the socket with ?ticket= from POST /ws/ticket, or an Authorization header",
                )),
                other => refused(other),
            });
    };
    match tickets.redeem(ticket).await {
        Ok(Some(credential)) => Ok(credential),
        Ok(None) => Err(refused(AuthError::invalid(
            "the ticket is unknown, used or expired: ask POST /ws/ticket for a new one",
        ))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot redeem a websocket ticket");
            Err(Problem::unavailable(
                "cannot check the ticket now (Redis is unavailable)",
            ))
        }
    }
}

pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    live: web::Data<LiveState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, actix_web::Error> {
    if *live.stop.borrow() {
        return Err(Problem::unavailable("pixdrop is shutting down").into());
    }
    // `?job=A&job=B`: the jobs to watch from the start; `?ticket=`: who is watching.
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| Problem::bad_request("bad-query", format!("cannot read the query: {e}")))?
        .into_inner();
    let initial: Vec<String> = query
        .iter()
        .filter(|(key, _)| key == "job")
        .map(|(_, id)| id.clone())
        .collect();
    let ticket = query
        .iter()
        .find(|(key, _)| key == "ticket")
        .map(|(_, t)| t.as_str());
    let credential = socket_caller(&req, ticket, &auth, &live.tickets).await?;

    let place = live
        .gate
        .enter(req.peer_addr().map(|a| a.ip()))
        .map_err(|busy| match busy {
            Busy::Server => Problem::unavailable("pixdrop holds as many live sockets as it can"),
            Busy::Client => Problem::too_many_requests(
                "too-many-sockets",
                format!(
                    "at most {} live sockets from one address; one socket can watch many jobs",
                    live.settings.max_sockets_per_client
                ),
            ),
        })?;
    let quota_place = state
        .quotas
        .take_socket(&credential.subject)
        .await
        .map_err(Problem::from)?
        .map_err(Problem::from)?;
    let (response, session, messages) = actix_ws::handle(&req, body)?;
    let limit = live.settings.max_message_bytes;
    let messages = messages
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit);
    let socket = Socket {
        session,
        queue: state.queue.clone(),
        media: state.media.clone(),
        subject: credential.subject,
        expires_at: credential.expires_at,
        quota_place,
        rate: TokenBucket::new(live.settings.max_messages_per_sec),
        refused_in_a_row: 0,
        settings: live.settings.clone(),
        watched: HashMap::new(),
        last_heard: Instant::now(),
        _place: place,
    };
    // The message stream is not `Send`: the socket lives on this HTTP worker's thread.
    actix_web::rt::spawn(socket.run(messages, live.hub.subscribe(), live.stop.clone(), initial));
    Ok(response)
}

/// One open websocket.
struct Socket {
    session: Session,
    queue: Queue,
    media: MediaAccess,
    /// Whose jobs this socket may watch.
    subject: Subject,
    /// When its credential lapses (Unix seconds): the socket closes then.
    expires_at: Option<u64>,
    /// Its place in the subject's socket quota, renewed while open and given back at the end.
    quota_place: SocketPlace,
    settings: WebSocketSettings,
    /// The jobs this socket watches, each with the version last sent; `None` until a snapshot
    /// showed the job is the subject's: no event of it is sent before.
    watched: HashMap<JobId, Option<u64>>,
    /// When the client last sent anything (a message, a pong).
    last_heard: Instant,
    /// The client's messages per second.
    rate: TokenBucket,
    /// Messages refused for the rate since the last accepted one.
    refused_in_a_row: u32,
    /// Its place at the gate, freed when the socket ends.
    _place: Pass,
}

/// A client still sending this many messages in a row over its rate is closed.
const MAX_REFUSED_IN_A_ROW: u32 = 3;

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
    async fn run(
        mut self,
        mut messages: AggregatedMessageStream,
        mut events: broadcast::Receiver<Broadcast>,
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
            let step = tokio::select! {
                message = messages.recv() => self.on_message(message).await,
                event = events.recv() => match event {
                    Ok(Broadcast::Resync) => {
                        let spread = self.settings.resync_spread_ms;
                        let delay = rand::random_range(0..=spread);
                        resync_at = Some(Box::pin(tokio::time::sleep(
                            std::time::Duration::from_millis(delay),
                        )));
                        Ok(())
                    }
                    other => self.on_broadcast(other).await,
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
                self.watched.remove(&id);
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
        }
        self.send_snapshots(ids).await
    }

    /// Sends the current state of `ids`. A job that no longer exists is no longer watched. When
    /// Redis cannot answer, the jobs stay watched: the hub's resync after Redis returns sends them.
    async fn send_snapshots(&mut self, ids: Vec<JobId>) -> Result<(), End> {
        if ids.is_empty() {
            return Ok(());
        }
        let records = match self.queue.jobs(&ids).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read job snapshots");
                let detail = "cannot read the jobs' state now (Redis is unavailable); \
                              snapshots follow when it is back";
                return self.error("unavailable", detail.into(), None).await;
            }
        };
        for (id, record) in ids.into_iter().zip(records) {
            // Another subject's job is as unknown as one that never existed.
            let Some(record) = record.filter(|r| r.subject == self.subject) else {
                self.watched.remove(&id);
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

    async fn on_broadcast(&mut self, received: Result<Broadcast, RecvError>) -> Result<(), End> {
        match received {
            Ok(Broadcast::Event(event)) => {
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
            // `run` schedules these, spread out; one arriving here is read at once.
            Ok(Broadcast::Resync) => self.resync().await,
            // This socket alone fell behind: no crowd to spread, so at once.
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "websocket lagged; sending snapshots");
                self.resync().await
            }
            Err(RecvError::Closed) => Err(End::Close(CloseCode::Away, "pixdrop is shutting down")),
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
