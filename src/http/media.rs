//! `GET /media/...`: originals and variants, with the right Content-Type, ETag, Last-Modified and
//! Range support (from actix-files), and never sniffed by the browser.
//!
//! [`MediaAccess`] makes every media URL a client is given, and checks the URLs that come back.
//! Public (sign-in off, or `media.public`): plain paths, cached anywhere forever (every path names
//! one content). Signed: `?expires=...&sig=...` (see `auth::signing`), refused with `403` when
//! expired or forged, cached by the browser alone, until the URL expires.
//!
//! Originals follow `media.originals`: as the variants (`public`), always signed (`private`: only
//! whoever can see the job gets a URL, for a while), or never served (`none`). An original keeps
//! its bytes, EXIF location included; the variants carry none.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_files::NamedFile;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::problem::Problem;
use crate::auth::signing::UrlSigner;
use crate::storage::StorageKey;

/// How media URLs are made and checked: for variants, and for originals.
#[derive(Debug, Clone)]
pub struct MediaAccess {
    pub variants: Access,
    /// `None`: originals are not served at all.
    pub originals: Option<Access>,
}

/// How the URLs of one kind of media are made and checked.
#[derive(Debug, Clone)]
pub enum Access {
    Public,
    Signed {
        signer: Arc<UrlSigner>,
        /// A URL's least lifetime; expiries are rounded up to a multiple of half of it.
        ttl_secs: u64,
    },
}

/// `media.originals`: who may download an upload's original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginalsAccess {
    /// As the variants are served.
    #[default]
    Public,
    /// Only at signed, expiring URLs, handed to whoever may see the job.
    Private,
    /// Never.
    None,
}

impl MediaAccess {
    /// Both kinds of media public: sign-in off, originals public.
    pub fn public() -> Self {
        Self {
            variants: Access::Public,
            originals: Some(Access::Public),
        }
    }

    /// The URL of a variant.
    pub fn url(&self, key: &StorageKey) -> String {
        self.variants.url(key)
    }

    /// The URL of an original, unless originals are not served.
    pub fn original_url(&self, key: &StorageKey) -> Option<String> {
        Some(self.originals.as_ref()?.url(key))
    }

    /// How the object at `key` is served; `None` when it is not.
    fn access_to(&self, key: &StorageKey) -> Option<&Access> {
        if key.is_original() {
            self.originals.as_ref()
        } else {
            Some(&self.variants)
        }
    }
}

#[derive(Deserialize)]
struct Signature {
    expires: Option<u64>,
    sig: Option<String>,
}

impl Access {
    /// The URL a client fetches the object at `key` from.
    pub fn url(&self, key: &StorageKey) -> String {
        let path = format!("/media/{key}");
        match self {
            Self::Public => path,
            Self::Signed { signer, ttl_secs } => {
                let expires = expiry(now_secs(), *ttl_secs);
                let sig = signer.sign(&path, expires);
                format!("{path}?expires={expires}&sig={sig}")
            }
        }
    }

    /// Whether the request may fetch its path; `Ok` with how long the answer may be cached.
    fn admit(&self, req: &HttpRequest) -> Result<CachePolicy, Problem> {
        let Self::Signed { signer, .. } = self else {
            return Ok(CachePolicy::Immutable);
        };
        let forbidden = |code, detail: &str| Problem::new(StatusCode::FORBIDDEN, code, detail);
        let query = web::Query::<Signature>::from_query(req.query_string()).ok();
        let (Some(expires), Some(sig)) = query.map(|q| (q.0.expires, q.0.sig)).unwrap_or_default()
        else {
            return Err(forbidden(
                "unsigned-media-url",
                "media here is served only to signed URLs; take the URL from the job's status",
            ));
        };
        if !signer.verify(req.path(), expires, &sig) {
            return Err(forbidden(
                "bad-media-signature",
                "this media URL's signature does not match it",
            ));
        }
        let now = now_secs();
        if expires <= now {
            return Err(forbidden(
                "expired-media-url",
                "this media URL has expired; fetch the job's status for a fresh one",
            ));
        }
        Ok(CachePolicy::PrivateFor(expires - now))
    }
}

enum CachePolicy {
    Immutable,
    PrivateFor(u64),
}

/// `now + ttl`, rounded up to a multiple of half the ttl: the URLs made within one such window are
/// the same, so a browser's cache keeps working, and each lasts at least `ttl`.
fn expiry(now: u64, ttl: u64) -> u64 {
    let step = (ttl / 2).max(1);
    (now + ttl).div_ceil(step) * step
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub async fn serve(
    req: HttpRequest,
    tail: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let missing = || Problem::not_found(format!("no media at /media/{tail}"));
    let key = StorageKey::parse(&tail).ok_or_else(missing)?;
    // An original that is not served reads as one that does not exist.
    let access = state.media.access_to(&key).ok_or_else(missing)?;
    let cache = access.admit(&req)?;
    let path = state.storage.media_file(&key);
    let file = NamedFile::open_async(&path).await.map_err(|_| missing())?;
    let mut response = file
        .use_etag(true)
        .use_last_modified(true)
        .prefer_utf8(false)
        .into_response(&req);
    let headers = response.headers_mut();
    let cache_control = match cache {
        CachePolicy::Immutable => "public, max-age=31536000, immutable".to_owned(),
        CachePolicy::PrivateFor(secs) => format!("private, max-age={secs}"),
    };
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_str(&cache_control).map_err(Problem::internal)?,
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_last_at_least_the_ttl_and_stay_put_within_a_window() {
        assert_eq!(expiry(1000, 3600), 5400);
        assert_eq!(expiry(1001, 3600), 5400);
        assert_eq!(expiry(1800, 3600), 5400);
        assert_eq!(expiry(1801, 3600), 7200);
        for now in [0, 1, 1799, 1800, 1801, 123_456_789] {
            let at = expiry(now, 3600);
            assert!(at >= now + 3600 && at < now + 3600 + 1800, "{now} -> {at}");
        }
    }
}
