//! One log line per HTTP request, through `tracing` like every other line: method, path (with the
//! query's credentials blanked), status, body size when known, and the time to the response's
//! head. Target `pixdrop::http::access_log`, so a filter can keep or drop request lines alone.
//! The same request is counted for `/metrics` by route pattern.

use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, Uri};
use actix_web::middleware::Next;

use crate::telemetry;

/// Middleware (for `actix_web::middleware::from_fn`).
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request = request_line(req.method(), req.uri());
    let method = req.method().clone();
    let answered = next.call(req).await;
    let took = started.elapsed();
    let ms = took.as_secs_f64() * 1000.0;
    match &answered {
        Ok(response) => {
            // The route's pattern (`/jobs/{id}`), never the path: one series per route.
            let route = response.request().match_pattern();
            telemetry::http_request(
                method.as_str(),
                route.as_deref().unwrap_or("unmatched"),
                response.status().as_u16(),
                took,
            );
            let bytes = match response.response().body().size() {
                BodySize::Sized(n) => Some(n),
                BodySize::None => Some(0),
                BodySize::Stream => None,
            };
            tracing::info!(
                request = %request,
                status = response.status().as_u16(),
                bytes,
                ms = format_args!("{ms:.1}"),
                "request"
            );
        }
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            telemetry::http_request(method.as_str(), "unmatched", status, took);
            tracing::info!(request = %request, status, ms = format_args!("{ms:.1}"), "request")
        }
    }
    answered
}

/// `METHOD /path?query`, with the values of `sig`, `ticket` and `token` replaced by `...`: a log
/// is no place for a usable credential (media signatures, websocket tickets, delete tokens).
fn request_line(method: &Method, uri: &Uri) -> String {
    let mut line = format!("{method} {}", uri.path());
    if let Some(query) = uri.query() {
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key @ ("sig" | "ticket" | "token"), _)) => format!("{key}=..."),
                _ => pair.to_owned(),
            })
            .collect();
        line.push('?');
        line.push_str(&redacted.join("&"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_request_lines_keep_no_signature_ticket_or_token() {
        let line = |uri: &str| request_line(&Method::GET, &uri.parse().unwrap());
        assert_eq!(
            line("/media/variants/x/thumb.webp?expires=123&sig=c2VjcmV0"),
            "GET /media/variants/x/thumb.webp?expires=123&sig=..."
        );
        assert_eq!(line("/ws?ticket=abc&job=1"), "GET /ws?ticket=...&job=1");
        assert_eq!(line("/jobs?state=failed"), "GET /jobs?state=failed");
        assert_eq!(line("/uploads/1?token=abc"), "GET /uploads/1?token=...");
        assert_eq!(line("/healthz"), "GET /healthz");
    }
}
