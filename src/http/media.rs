//! `GET /media/...`: originals and variants, with the right Content-Type, ETag, Last-Modified and
//! Range support (from actix-files), cached forever (every path names one content), and never
//! sniffed by the browser.

use actix_files::NamedFile;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::problem::Problem;
use crate::storage::StorageKey;

pub async fn serve(
    req: HttpRequest,
    tail: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let missing = || Problem::not_found(format!("no media at /media/{tail}"));
    let key = StorageKey::parse(&tail).ok_or_else(missing)?;
    let path = state.storage.media_file(&key);
    let file = NamedFile::open_async(&path).await.map_err(|_| missing())?;
    let mut response = file
        .use_etag(true)
        .use_last_modified(true)
        .prefer_utf8(false)
        .into_response(&req);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
