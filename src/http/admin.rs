//! The admin API, for whoever runs pixdrop rather than for its users: `DELETE
//! /admin/originals/{sha256}` purges every upload of some bytes, whoever made it, with their
//! variants (`?block=true` also refuses those bytes from then on, for abuse handling), and
//! `DELETE /admin/blocked/{sha256}` lifts such a block.
//!
//! An administrator ([`Admin`]) is a signed-in subject listed in `auth.admins`. Without sign-in
//! (`auth.mode = "off"`) there is no one to list: with `auth.admin_on_loopback = true` the admin
//! API then answers callers on the loopback address, unless the request carries a header a proxy
//! adds. Off by default, as behind a proxy on the same host that adds none, every caller would
//! look local.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::caller::refused;
use super::problem::Problem;
use crate::auth::{AuthMode, Authenticator};
use crate::queue::JobId;
use crate::storage::StorageKey;

/// A request from an administrator.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = req.app_data::<web::Data<Authenticator>>().cloned();
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes().to_vec());
        let local = req.peer_addr().is_some_and(|peer| peer.ip().is_loopback())
            && !PROXY_HEADERS
                .iter()
                .any(|name| req.headers().contains_key(*name));
        Box::pin(async move {
            let auth = auth.ok_or_else(|| Problem::internal("no authenticator configured"))?;
            if auth.mode() == AuthMode::Off {
                return match (auth.admin_on_loopback(), local) {
                    (true, true) => Ok(Admin),
                    (true, false) => Err(not_admin(
                        "without sign-in the admin API answers only requests made on this \
                         host's loopback address, not forwarded by a proxy",
                    )),
                    (false, _) => Err(not_admin(
                        "without sign-in the admin API is closed: set auth.admin_on_loopback = \
                         true to open it to this host's loopback address, or sign in with a \
                         subject listed in auth.admins",
                    )),
                };
            }
            let credential = auth
                .authenticate(authorization.as_deref())
                .await
                .map_err(refused)?;
            if auth.is_admin(&credential.subject) {
                Ok(Admin)
            } else {
                Err(not_admin(
                    "this needs an administrator: a subject listed in auth.admins",
                ))
            }
        })
    }
}

/// Headers proxies add to what they forward: a request carrying one came from elsewhere, however
/// local its connection.
const PROXY_HEADERS: [&str; 7] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
    "cf-connecting-ip",
];

fn not_admin(detail: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "admin-only", detail)
}

/// Reads the path's SHA-256 (hex, either case).
fn sha256_of(raw: &str) -> Result<String, Problem> {
    let sha = raw.to_ascii_lowercase();
    if StorageKey::is_sha256(&sha) {
        Ok(sha)
    } else {
        Err(Problem::bad_request(
            "bad-hash",
            format!("{raw:?} is not a SHA-256: 64 hex digits, as an upload's job shows it"),
        ))
    }
}

#[derive(Serialize)]
struct Purged {
    sha256: String,
    /// The uploads removed.
    deleted: Vec<JobId>,
    /// Whether the bytes are refused from now on.
    blocked: bool,
    /// Whether the original is gone from storage (it stays while an upload of it is under way).
    original_removed: bool,
}

/// `DELETE /admin/originals/{sha256}?block=true`.
pub async fn purge_original(
    _: Admin,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let sha = sha256_of(&path)?;
    let mut block = false;
    for (key, value) in query.iter() {
        match (key.as_str(), value.as_str()) {
            ("block", "true") => block = true,
            ("block", "false") => block = false,
            _ => {
                return Err(Problem::bad_request(
                    "bad-query",
                    format!("{key}={value:?}: the one parameter is block=true or block=false"),
                ));
            }
        }
    }
    let removed = state.cleanup.purge(&sha, block).await?;
    tracing::warn!(%sha, jobs = removed.len(), block, "original purged by an administrator");
    let blocked = block || state.queue.is_blocked(&sha).await?;
    Ok(HttpResponse::Ok().json(Purged {
        original_removed: !state.storage.has_original(&sha),
        deleted: removed.iter().map(|job| job.id).collect(),
        blocked,
        sha256: sha,
    }))
}

/// `DELETE /admin/blocked/{sha256}`: the bytes may be uploaded again. `404` when they were not
/// blocked.
pub async fn unblock(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let sha = sha256_of(&path)?;
    if state.queue.set_blocked(&sha, false).await? {
        tracing::warn!(%sha, "block lifted by an administrator");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(Problem::not_found(format!("{sha} is not blocked")))
    }
}
