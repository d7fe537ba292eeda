//! A handler that panics answers `500` problem+json instead of dropping the connection. Panics on
//! client input are bugs (tests and fuzzing hunt them), but one that slips through must cost the
//! client a clear answer, never a hang-up, and must leave the process serving everyone else.

use std::panic::AssertUnwindSafe;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use futures_util::FutureExt;

use super::problem::Problem;

/// Middleware (for `actix_web::middleware::from_fn`). A panic becomes an error, which actix answers
/// with the error's own response: the problem's.
pub async fn catch_panics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Copied before the request moves into the handler (cloning the request itself would stop
    // the router from writing its path parameters).
    let what = format!("{} {}", req.method(), req.path());
    // The request's state is dropped with the panicking future; handlers keep nothing shared
    // half-changed across a panic (their state lives in Redis, changed by whole scripts).
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Problem::internal(format!("handler for {what} panicked: {message}")).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, middleware, test, web};

    use super::*;

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_problem_json_and_the_next_request_is_served() {
        let app = test::init_service(
            App::new()
                .wrap(middleware::from_fn(catch_panics))
                .route(
                    "/boom",
                    web::get().to(|| async {
                        if true {
                            panic!("bug on client input");
                        }
                        HttpResponse::Ok().finish()
                    }),
                )
                .route("/fine", web::get().to(HttpResponse::Ok)),
        )
        .await;
        // The server answers an error with its own response: the problem's.
        let error =
            test::try_call_service(&app, test::TestRequest::get().uri("/boom").to_request())
                .await
                .err()
                .expect("the panic became an error");
        let response = error.error_response();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal");
        let fine =
            test::call_service(&app, test::TestRequest::get().uri("/fine").to_request()).await;
        assert_eq!(fine.status(), 200);
    }
}
