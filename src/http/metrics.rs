//! `GET /metrics`: the Prometheus exposition (see `crate::telemetry`). On the API's port only an
//! administrator may read it (it tells the queue's size and error rates to whoever asks); the
//! `metrics.bind` listener, meant for a private address, serves it to any caller, and is how a
//! worker-only process, which has no API, is scraped.

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use serde::Deserialize;

use super::AppState;
use super::admin::Admin;
use crate::queue::Queue;
use crate::telemetry;
use crate::validate::Checks;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// A second listener serving only `/metrics`, to anyone who reaches it: for a scraper on a
    /// private network, and for worker-only processes. Unset: none.
    pub bind: Option<String>,
}

impl MetricsSettings {
    pub fn check(&self, checks: &mut Checks) {
        if let Some(bind) = self.bind.as_deref().filter(|b| !b.is_empty()) {
            checks.require(
                bind.parse::<std::net::SocketAddr>().is_ok(),
                "metrics.bind",
                || {
                    format!(
                        "metrics.bind ({bind:?}) must be an address and port, like 10.0.0.5:9898"
                    )
                },
            );
        }
    }
}

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The API's `/metrics`, for administrators.
pub async fn metrics(_admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    exposition(&state.queue).await
}

async fn exposition(queue: &Queue) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(telemetry::render(queue).await)
}

/// Starts the `metrics.bind` listener, when set; its server and bound port.
pub fn listener(
    settings: &MetricsSettings,
    queue: &Queue,
) -> anyhow::Result<Option<(actix_web::dev::Server, u16)>> {
    let Some(bind) = settings.bind.as_deref().filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    let listener =
        TcpListener::bind(bind).with_context(|| format!("cannot listen on metrics.bind {bind}"))?;
    let port = listener.local_addr()?.port();
    let queue = web::Data::new(queue.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(queue.clone()).route(
            "/metrics",
            web::get().to(|queue: web::Data<Queue>| async move { exposition(&queue).await }),
        )
    })
    .workers(1)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(1)
    .run();
    tracing::info!(address = %bind, port, "metrics listening");
    Ok(Some((server, port)))
}
