//! The drag-and-drop page: `static/` embedded in the binary (so it works from any directory),
//! served at `/` and `/static/...`, and `GET /limits`, the upload limits the page checks files
//! against before sending them (the server still decides).

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;
use serde::Serialize;

use super::problem::Problem;
use super::settings::UploadSettings;
use crate::pipeline::{ImageFormat, Limits, VariantSpec};

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// The page may load only its own scripts, styles and images (and blob: previews of local files),
/// and talk only to its own origin: nothing injected can run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; \
    connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub async fn index(req: HttpRequest) -> Result<HttpResponse, Problem> {
    asset(&req, "index.html")
}

pub async fn file(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, Problem> {
    asset(&req, &path)
}

/// Serves one embedded file, revalidated by ETag: the page is small, and a new build of pixdrop
/// must never leave a browser on an old script.
pub(super) fn asset(req: &HttpRequest, path: &str) -> Result<HttpResponse, Problem> {
    let file = Assets::get(path).ok_or_else(|| Problem::not_found(format!("no file {path:?}")))?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ));
    if fresh {
        return Ok(response.finish());
    }
    // Embedded files are 'static: serve them without a copy.
    let body = match file.data {
        Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        Cow::Owned(bytes) => Bytes::from(bytes),
    };
    Ok(response.content_type(file.metadata.mimetype()).body(body))
}

/// What `GET /limits` answers.
#[derive(Debug, Clone, Serialize)]
pub struct PublicLimits {
    max_file_bytes: u64,
    max_files: usize,
    max_body_bytes: u64,
    max_pixels: u64,
    formats: Vec<&'static str>,
    /// The formats as people know them, in the order of `formats`.
    format_labels: Vec<&'static str>,
    mime_types: Vec<&'static str>,
    extensions: Vec<&'static str>,
    variants: Vec<VariantLimits>,
}

#[derive(Debug, Clone, Serialize)]
struct VariantLimits {
    name: String,
    max_width: u32,
    max_height: u32,
}

impl PublicLimits {
    pub fn new(uploads: &UploadSettings, pipeline: &Limits, variants: &[VariantSpec]) -> Self {
        Self {
            max_file_bytes: uploads.max_file_bytes,
            max_files: uploads.max_files,
            max_body_bytes: uploads.max_body_bytes,
            max_pixels: pipeline.max_pixels,
            formats: ImageFormat::ALL.iter().map(|f| f.name()).collect(),
            format_labels: ImageFormat::ALL.iter().map(|f| f.label()).collect(),
            mime_types: ImageFormat::ALL.iter().map(|f| f.mime()).collect(),
            extensions: ImageFormat::ALL
                .iter()
                .flat_map(|f| f.extensions().iter().copied())
                .collect(),
            variants: variants
                .iter()
                .map(|v| VariantLimits {
                    name: v.name().to_owned(),
                    max_width: v.max_width(),
                    max_height: v.max_height(),
                })
                .collect(),
        }
    }
}

pub async fn limits(limits: web::Data<PublicLimits>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(limits.get_ref())
}
