//! `DELETE /uploads/{id}`: an upload removed for good, with its variants, and its original unless
//! another upload of the same bytes still holds it. Its owner may (a signed-in subject), or the
//! holder of its delete token, handed out once in the upload's `202` answer and presented as
//! `Authorization: Bearer <token>` or `?token=<token>`: the way to delete without sign-in.
//!
//! `204`, after which the job, its variants and (unless shared) its original read `404`, as does a
//! second delete. A job still running is stopped first (its worker is fenced off). An upload the
//! caller may not delete reads `404`, exactly as one that does not exist.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::delete_token::digest;
use crate::auth::{AuthError, Authenticator, bearer_token};
use crate::http::AppState;
use crate::http::caller::refused;
use crate::http::problem::Problem;
use crate::queue::{DeleteProof, JobId, Subject};

fn no_upload(raw: impl std::fmt::Display) -> Problem {
    Problem::not_found(format!("no upload {raw} (unknown, expired or deleted)"))
}

pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, Problem> {
    let id: JobId = path
        .parse()
        .map_err(|_| no_upload(format!("{:?}", *path)))?;
    let mut token = None;
    for (key, value) in query.iter() {
        match key.as_str() {
            "token" if token.is_none() => token = Some(value.as_str()),
            "token" => {
                return Err(Problem::bad_request("bad-query", "token is given twice"));
            }
            other => {
                return Err(Problem::bad_request(
                    "bad-query",
                    format!("unknown parameter {other:?}: the one parameter is token"),
                ));
            }
        }
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    // The bearer value proves a subject (its owner), or is the upload's delete token: both are
    // tried, so one header serves either way.
    let signed_in = match authorization {
        Some(value) => Some(auth.authenticate(Some(value)).await),
        None => None,
    };
    let bearer = authorization.and_then(|value| bearer_token(value).ok());
    let token = token.or(bearer);
    let subject = match &signed_in {
        Some(Ok(credential)) => credential.subject.clone(),
        _ => Subject::anonymous(),
    };
    if subject.name().is_none() && token.is_none() {
        let error = match signed_in {
            Some(Err(e)) => e,
            _ => AuthError::invalid(
                "send the upload's delete_token (Authorization: Bearer <token>, or ?token=), \
                 or sign in as its owner",
            ),
        };
        return Err(refused(error));
    }
    let digest = token.map(digest);
    let proof = DeleteProof {
        subject: &subject,
        token_digest: digest.as_deref(),
    };
    match state.cleanup.delete(&id, proof).await? {
        Some(removed) => {
            tracing::info!(job = %id, was = %removed.state, "upload deleted");
            Ok(HttpResponse::NoContent().finish())
        }
        // A bearer value that is neither a credential nor this upload's token reads as any
        // wrong proof does; only a credential that cannot be checked now says so.
        None => match signed_in {
            Some(Err(e @ AuthError::Unavailable(_))) => Err(refused(e)),
            _ => Err(no_upload(id)),
        },
    }
}
