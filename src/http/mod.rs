//! The HTTP API and the page. Handlers parse and check input, talk to the queue and storage, and
//! answer; they never run the image pipeline. Every error is `application/problem+json` (see
//! `problem.rs`). `/ws` streams job events live (see `ws.rs`); `/` is the upload page. Routes that
//! act for someone take a [`caller::Caller`], which authenticates the request first.

mod access_log;
pub mod admin;
mod admin_queue;
mod body;
pub mod caller;
mod catch_panic;
mod dashboard;
mod gate;
mod health;
mod jobs;
pub mod media;
pub mod metrics;
mod origin;
pub mod page;
pub mod problem;
mod rate;
pub mod settings;
pub(crate) mod upload;
pub mod view;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::{HttpResponse, web};

use crate::queue::Queue;
use crate::storage::Storage;
use problem::Problem;
use settings::UploadSettings;

/// What every handler shares.
pub struct AppState {
    pub queue: Queue,
    pub storage: Storage,
    /// Deletions, purges, and the sweep that removes their files.
    pub cleanup: Arc<crate::cleanup::Cleanup>,
    /// Each subject's uploads, stored bytes and sockets.
    pub quotas: crate::auth::quotas::Quotas,
    /// How the media URLs handed out are made, and checked when they come back.
    pub media: media::MediaAccess,
    pub uploads: UploadSettings,
    /// Uploads in progress, in all and per client.
    pub uploads_gate: gate::Gate,
    /// `storage.min_free_bytes`: uploads are refused below it.
    pub min_free_bytes: u64,
    /// Set when shutdown begins, so `/readyz` sends load balancers elsewhere.
    pub shutting_down: Arc<AtomicBool>,
}

pub use access_log::log_request;
pub use catch_panic::catch_panics;
pub use gate::Gate;
pub use origin::{OriginPolicy, check_origin};

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/upload", web::post().to(upload::upload))
        .route("/jobs", web::get().to(jobs::list))
        .route("/me", web::get().to(jobs::me))
        .route("/jobs/{id}", web::get().to(jobs::get))
        .route("/jobs/{id}", web::delete().to(jobs::cancel))
        .route("/jobs/{id}/retry", web::post().to(jobs::retry))
        .route("/uploads/{id}", web::delete().to(upload::delete))
        .route(
            "/admin/originals/{sha256}",
            web::delete().to(admin::purge_original),
        )
        .route("/admin/blocked/{sha256}", web::delete().to(admin::unblock))
        .route("/admin", web::get().to(dashboard::page))
        .route("/admin/events", web::get().to(dashboard::events))
        .route("/admin/queue", web::get().to(admin_queue::counts))
        .route("/admin/instances", web::get().to(admin_queue::instances))
        .route("/admin/jobs", web::get().to(admin_queue::finished))
        .route(
            "/admin/jobs/retry-failed",
            web::post().to(admin_queue::retry_failed),
        )
        .route("/admin/jobs/{id}/retry", web::post().to(admin_queue::retry))
        .route("/admin/jobs/{id}", web::delete().to(admin_queue::delete))
        .route("/admin/clean", web::post().to(admin_queue::clean))
        .route("/admin/pause", web::post().to(admin_queue::pause))
        .route("/admin/resume", web::post().to(admin_queue::resume))
        .route("/media/{tail:.*}", web::get().to(media::serve))
        .route("/media/{tail:.*}", web::head().to(media::serve))
        .route("/ws", web::get().to(ws::connect))
        .route("/ws/ticket", web::post().to(ws::ticket))
        .route("/limits", web::get().to(page::limits))
        .route("/", web::get().to(page::index))
        .route("/", web::head().to(page::index))
        .route("/static/{path:.*}", web::get().to(page::file))
        .route("/static/{path:.*}", web::head().to(page::file))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .default_service(web::to(not_found));
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
