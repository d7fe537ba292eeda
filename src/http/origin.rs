//! Which sites may drive pixdrop from a browser, and under which names it answers.
//!
//! - `Origin`: a browser names the page that sent a request. A state-changing request (anything
//!   but GET and HEAD) and the websocket (`/ws`, which reads job events) are refused (`403`
//!   `cross-origin`) when they come from a page other than pixdrop's own (the request's host and
//!   port) or one of `server.allowed_origins`. A request without `Origin` (curl, a
//!   server) is not a browser acting for someone, and passes.
//! - `Host`: with `server.allowed_hosts` set, a request for any other name is refused (`421`
//!   `unknown-host`). Unset, a loopback bind answers only to loopback names, which stops DNS
//!   rebinding (a page on a hostile name resolving to 127.0.0.1) from reaching a local pixdrop.

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;

use super::problem::Problem;
use super::settings::ServerSettings;

/// The checks, from settings.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed_origins: Vec<String>,
    /// Lowercase names without port; `None` accepts any.
    allowed_hosts: Option<Vec<String>>,
}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl OriginPolicy {
    pub fn new(server: &ServerSettings) -> Self {
        let allowed_hosts = if !server.allowed_hosts.is_empty() {
            Some(
                server
                    .allowed_hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
            )
        } else if binds_loopback(&server.bind) {
            Some(LOOPBACK_NAMES.iter().map(|h| (*h).to_owned()).collect())
        } else {
            None
        };
        Self {
            allowed_origins: server
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allowed_hosts,
        }
    }

    /// `Err` with the answer when the request must be refused.
    fn check(&self, req: &ServiceRequest) -> Result<(), Problem> {
        // The Host header itself: actix's connection info would also believe X-Forwarded-Host,
        // which any page can set on a request to its own (rebound) name.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_ascii_lowercase();
        if let Some(allowed) = &self.allowed_hosts
            && !allowed.contains(&name_of(&host).to_owned())
        {
            return Err(Problem::new(
                StatusCode::MISDIRECTED_REQUEST,
                "unknown-host",
                format!("this server does not answer for {host:?}"),
            ));
        }
        let guarded = !matches!(*req.method(), Method::GET | Method::HEAD) || req.path() == "/ws";
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(());
        };
        if !guarded {
            return Ok(());
        }
        let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
        // pixdrop's own page: the same host and port. The scheme is not compared, as behind a
        // proxy that ends TLS the page is https while pixdrop hears http.
        let same_host = origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host);
        if same_host || self.allowed_origins.contains(&origin) {
            return Ok(());
        }
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "cross-origin",
            format!(
                "requests from pages at {origin:?} are not accepted; add it to server.allowed_origins to allow it"
            ),
        ))
    }
}

/// Middleware (for `actix_web::middleware::from_fn`): the policy is the app's data.
pub async fn check_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(policy) = req.app_data::<actix_web::web::Data<OriginPolicy>>() {
        policy.check(&req)?;
    }
    next.call(req).await
}

/// The host name of a `Host` value, without its port: `127.0.0.1:8080` → `127.0.0.1`,
/// `[::1]:80` → `[::1]`.
fn name_of(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

pub(crate) fn binds_loopback(bind: &str) -> bool {
    let name = name_of(bind);
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_and_loopback_binds_are_recognised() {
        assert_eq!(name_of("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(name_of("[::1]:80"), "[::1]");
        assert_eq!(name_of("example.com"), "example.com");
        assert!(binds_loopback("127.0.0.1:0"));
        assert!(binds_loopback("[::1]:8080"));
        assert!(binds_loopback("localhost:8080"));
        assert!(!binds_loopback("0.0.0.0:8080"));
        assert!(!binds_loopback("[::]:8080"));
    }
}
