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
//! Each socket (`socket.rs`) is one task on the HTTP worker's thread. It reads the process's event broadcast (see
//! `events.rs`) and keeps only the jobs it watches. Every snapshot and event carries the job's
//! `version`; an event already reflected in the snapshot sent before it is skipped, so a client
//! never sees a job go back in time. When the socket lags behind the broadcast, or the hub
//! resubscribed to Redis (events may have been lost), it sends fresh snapshots instead.
//!
//! The server pings every `ping_interval`; a socket silent for `idle_timeout` is closed, as is one
//! that cannot take messages for that long. On shutdown every socket is closed with 1001 (going
//! away), so a graceful stop never waits on open sockets.

mod socket;

use std::collections::HashMap;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::AppState;
use super::caller::{Caller, refused};
use super::gate::{Busy, Gate};
use super::problem::Problem;
use super::rate::TokenBucket;
use super::settings::WebSocketSettings;
use super::view::JobView;
use crate::auth::tickets::{TICKET_TTL, Tickets};
use crate::auth::{AuthError, Authenticator, Credential};
use crate::events::EventHub;
use crate::queue::JobId;
use socket::Socket;

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
pub(super) struct ClientMessage {
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    unsubscribe: Vec<String>,
}

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(super) enum ServerMessage {
    /// The whole job, as `GET /jobs/{id}` gives it.
    Snapshot(JobView),
    /// A change: the same shape, without the upload's fields.
    Event(JobView),
    /// The job was deleted for good; the socket stops watching it.
    Deleted { id: JobId },
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
        snapshots_owed: false,
        settings: live.settings.clone(),
        watched: HashMap::new(),
        inbox: live.hub.inbox(),
        last_heard: Instant::now(),
        _place: place,
        _open: crate::telemetry::Held::new(crate::telemetry::WEBSOCKETS_OPEN),
    };
    // The message stream is not `Send`: the socket lives on this HTTP worker's thread.
    actix_web::rt::spawn(socket.run(messages, live.stop.clone(), initial));
    Ok(response)
}
