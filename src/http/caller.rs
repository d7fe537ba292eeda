//! [`Caller`]: the extractor that authenticates a request before its handler runs (and before its
//! body is read), so every route that takes one refuses strangers with `401` and a
//! `WWW-Authenticate` challenge (RFC 6750), and knows the subject it acts for.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use super::problem::Problem;
use crate::auth::{AuthError, Authenticator, Credential};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Credential);

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = req.app_data::<web::Data<Authenticator>>().cloned();
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes().to_vec());
        Box::pin(async move {
            let auth = auth.ok_or_else(|| Problem::internal("no authenticator configured"))?;
            auth.authenticate(header.as_deref())
                .await
                .map(Caller)
                .map_err(refused)
        })
    }
}

/// The answer to a request whose credential is missing or bad.
pub fn refused(error: AuthError) -> Problem {
    const REALM: &str = "Bearer realm=\"pixdrop\"";
    match error {
        AuthError::Missing => {
            Problem::unauthorized("unauthenticated", error.to_string(), REALM.into())
        }
        AuthError::WrongScheme => Problem::unauthorized(
            "unauthenticated",
            error.to_string(),
            format!("{REALM}, error=\"invalid_request\""),
        ),
        AuthError::Invalid(reason) => {
            // The description travels in a quoted header value: no quotes or backslashes.
            let description: String = reason
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
                .collect();
            Problem::unauthorized(
                "invalid-credentials",
                reason,
                format!("{REALM}, error=\"invalid_token\", error_description=\"{description}\""),
            )
        }
        AuthError::Unavailable(reason) => Problem::unavailable(reason),
    }
}
