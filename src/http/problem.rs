//! Errors as RFC 9457 `application/problem+json`: status, title, detail, and a stable kebab-case
//! `code` clients can branch on. Every handler error becomes one of these; so do the framework's
//! own errors (unknown route, bad path), so a client never has to parse HTML or plain text.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{status} {code}: {detail}")]
pub struct Problem {
    #[serde(serialize_with = "status_code")]
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_type: Option<String>,
    /// A 401's `WWW-Authenticate` challenge.
    #[serde(skip)]
    pub challenge: Option<Box<str>>,
    /// Seconds a 429 or 503 asks the client to wait (5 unless set).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

fn status_code<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title: status.canonical_reason().unwrap_or("Error"),
            detail: detail.into(),
            code,
            detected_type: None,
            challenge: None,
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn too_large(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, detail)
    }

    /// The request carries no valid credential; `challenge` is the `WWW-Authenticate` value.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>, challenge: String) -> Self {
        Self {
            challenge: Some(challenge.into()),
            ..Self::new(StatusCode::UNAUTHORIZED, code, detail)
        }
    }

    /// The client holds or sends more than it may; it can try again after a while.
    pub fn too_many_requests(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, detail)
    }

    /// The client took too long to send its request.
    pub fn timeout(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, code, detail)
    }

    /// Redis (or another dependency) is unreachable: nothing was accepted; try again later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// Something on our side failed; the detail is logged, not sent.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; it has been logged",
        )
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header(ContentType(
            "application/problem+json".parse().unwrap_or(mime_json()),
        ));
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            response.insert_header(("Retry-After", self.retry_after.unwrap_or(5).to_string()));
        }
        if let Some(challenge) = &self.challenge {
            response.insert_header(("WWW-Authenticate", &**challenge));
        }
        response.json(self)
    }
}

fn mime_json() -> actix_web::mime::Mime {
    actix_web::mime::APPLICATION_JSON
}

impl From<crate::queue::QueueError> for Problem {
    fn from(e: crate::queue::QueueError) -> Self {
        tracing::warn!(error = %e, "redis unavailable");
        crate::telemetry::redis_error("http");
        Self::unavailable("the job store is unreachable; nothing was changed, try again shortly")
    }
}

impl From<crate::auth::quotas::OverQuota> for Problem {
    fn from(over: crate::auth::quotas::OverQuota) -> Self {
        use crate::auth::quotas::OverQuota;
        match over {
            OverQuota::UploadRate { limit, retry_after } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u32;
                Self {
                    retry_after: Some(secs),
                    ..Self::too_many_requests(
                        "upload-quota",
                        format!(
                            "at most {limit} files a minute may be uploaded; try again in {secs} s"
                        ),
                    )
                }
            }
            OverQuota::StoredBytes { used, limit } => Self::new(
                StatusCode::FORBIDDEN,
                "storage-quota",
                format!(
                    "this upload would pass your storage quota ({used} of {limit} bytes used); \
                     delete uploads to make room"
                ),
            ),
            OverQuota::Sockets { limit } => Self::too_many_requests(
                "socket-quota",
                format!(
                    "at most {limit} live sockets may be open at once; one socket can watch many jobs"
                ),
            ),
        }
    }
}

impl From<crate::auth::StoreError> for Problem {
    fn from(e: crate::auth::StoreError) -> Self {
        tracing::warn!(error = %e, "cannot check a quota");
        Self::unavailable("quotas cannot be checked now (Redis is unavailable); try again shortly")
    }
}
