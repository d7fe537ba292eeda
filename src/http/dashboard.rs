//! The admin dashboard: the page at `/admin` (`static/admin.html`, embedded like the upload page,
//! under the same Content-Security-Policy) and `GET /admin/events`, every job's events as they
//! happen, which the page follows. The page itself holds no data and is served to anyone; what it
//! shows comes from the admin API, which answers administrators only (see `admin.rs`).
//!
//! The stream is newline-delimited JSON, read with `fetch` so the page can send its credential as
//! a header (an `EventSource` cannot): `{"type": "event", ...}` for a job's change (without its
//! result), `{"type": "deleted", "id"}`, `{"type": "resync"}` when events may have been missed
//! (the page then reads the queue afresh), and `{"type": "keepalive"}` when nothing happened for a
//! while, so proxies keep the stream open and a client that left is noticed.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::admin::Admin;
use super::page;
use super::problem::Problem;
use super::ws::LiveState;
use crate::events::Delivery;

/// How long the stream may stay silent before it says it is alive.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// `GET /admin`: the dashboard's page.
pub async fn page(req: HttpRequest) -> Result<HttpResponse, Problem> {
    page::asset(&req, "admin.html")
}

/// `GET /admin/events`: every job's events, until the client leaves or the process stops.
pub async fn events(_: Admin, live: web::Data<LiveState>) -> HttpResponse {
    let mut inbox = live.hub.inbox();
    inbox.watch_everything();
    let stop = live.stop.clone();
    let hello = futures_util::stream::once(async { line(json!({ "type": "resync" })) });
    let changes = futures_util::stream::unfold((inbox, stop), |(mut inbox, mut stop)| async move {
        let message = tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => return None,
            delivery = inbox.recv() => message(delivery),
            () = tokio::time::sleep(KEEPALIVE) => json!({ "type": "keepalive" }),
        };
        Some((line(message), (inbox, stop)))
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Tells nginx not to hold the stream back in its buffers.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures_util::StreamExt::chain(hello, changes))
}

fn message(delivery: Delivery) -> serde_json::Value {
    match delivery {
        Delivery::Event(event) => json!({
            "type": "event",
            "id": event.id,
            "state": event.state,
            "attempts": event.attempts,
            "max_attempts": event.max_attempts,
            "progress": event.progress,
            "step": event.step,
            "error": event.error,
            "version": event.version,
            "updated_at": event.updated_at,
        }),
        Delivery::Deleted(id) => json!({ "type": "deleted", "id": id }),
        Delivery::Resync | Delivery::Lagged => json!({ "type": "resync" }),
    }
}

fn line(message: serde_json::Value) -> Result<Bytes, Infallible> {
    let mut bytes = serde_json::to_vec(&message).unwrap_or_default();
    bytes.push(b'\n');
    Ok(Bytes::from(bytes))
}
