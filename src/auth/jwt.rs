//! Identity-provider JWTs (Clerk, Auth0, Keycloak...): the signature is checked against the
//! provider's published keys (a JWKS, fetched from `auth.jwt.jwks_url` and cached, or read from
//! `auth.jwt.jwks_file`), then `iss`, `aud` (when configured), `exp` and `nbf` (with a small leeway)
//! and, when the token has one, Clerk's `azp` against the allowed origins. The algorithm is the one
//! the settings fix: a token naming another (`none`, or HS256 hoping to be checked with the public
//! key as an HMAC secret) is refused before any key is looked at. `sub` is the subject.
//!
//! A token naming a key id the cached set lacks (the provider rotated its keys) fetches the set
//! again, at most once per `jwks_min_refetch_secs`, so made-up key ids cannot hammer the provider.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::settings::{JwtAlgorithm, JwtSettings};
use super::{AuthError, Credential};
use crate::queue::Subject;

/// The most of a JWKS response read: a provider's key set is a few kilobytes.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// After a failed fetch, the cached keys serve this long before the next try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The claims pixdrop reads; the library checks `iss`, `aud`, `exp` and `nbf`. Optional here so
/// that a token lacking one is refused by the library's check, which names the claim, rather than
/// by a parse error that names nothing.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    azp: Option<String>,
}

enum KeySource {
    Url {
        url: String,
        client: reqwest::Client,
    },
    File(PathBuf),
}

/// The provider's keys as last read.
#[derive(Default)]
struct KeySet {
    keys: Vec<(Option<String>, DecodingKey)>,
    /// When the set should be fetched again (`None`: never fetched).
    stale_at: Option<Instant>,
    /// The last fetch an unknown key id caused.
    last_unknown_refetch: Option<Instant>,
}

impl KeySet {
    /// The key for `kid`; a token without one may use the only key of a one-key set.
    fn find(&self, kid: Option<&str>) -> Option<DecodingKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(id, _)| id.as_deref() == Some(kid))
                .map(|(_, key)| key.clone()),
            None if self.keys.len() == 1 => Some(self.keys[0].1.clone()),
            None => None,
        }
    }
}

pub struct JwtVerifier {
    algorithm: Algorithm,
    validation: Validation,
    /// Origins a token's `azp` may name (lowercase, no trailing slash).
    authorized_parties: Vec<String>,
    source: KeySource,
    cache_for: Duration,
    min_refetch: Duration,
    /// A std lock: held only to read or swap the set, never across an await.
    keys: RwLock<KeySet>,
    /// One fetch at a time; callers that waited find the fresh set.
    fetching: tokio::sync::Mutex<()>,
}

impl JwtVerifier {
    /// From checked settings; a `jwks_file` is read now (an unreadable one is an error).
    pub fn new(settings: &JwtSettings, allowed_origins: &[String]) -> anyhow::Result<Self> {
        let algorithm = match settings.algorithm {
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        let mut required = vec!["exp", "iss", "sub"];
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let source = match (&settings.jwks_url, &settings.jwks_file) {
            (Some(url), _) => KeySource::Url {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?,
            },
            (None, Some(path)) => KeySource::File(path.clone()),
            (None, None) => anyhow::bail!("auth.jwt needs jwks_url or jwks_file"),
        };
        let verifier = Self {
            algorithm,
            validation,
            authorized_parties: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            source,
            cache_for: Duration::from_secs(settings.jwks_cache_secs),
            min_refetch: Duration::from_secs(settings.jwks_min_refetch_secs),
            keys: RwLock::new(KeySet::default()),
            fetching: tokio::sync::Mutex::new(()),
        };
        if let KeySource::File(path) = &verifier.source {
            verifier.replace_keys(read_file(path)?);
        }
        Ok(verifier)
    }

    /// Reads a `jwks_file` again (a URL's keys refresh on their own).
    pub fn reload(&self) -> anyhow::Result<()> {
        if let KeySource::File(path) = &self.source {
            self.replace_keys(read_file(path)?);
        }
        Ok(())
    }

    pub async fn verify(&self, token: &str) -> Result<Credential, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::invalid("the token is not a well-formed JWT"))?;
        if header.alg != self.algorithm {
            return Err(AuthError::invalid(format!(
                "the token is signed with {:?}; only {:?} is accepted",
                header.alg, self.algorithm
            )));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| AuthError::invalid(refusal(e.kind())))?
            .claims;
        if let Some(azp) = &claims.azp {
            let azp = azp.trim_end_matches('/').to_ascii_lowercase();
            if !self.authorized_parties.contains(&azp) {
                return Err(AuthError::invalid(format!(
                    "the token was issued for {azp:?}, which is not in server.allowed_origins"
                )));
            }
        }
        let (Some(sub), Some(exp)) = (claims.sub, claims.exp) else {
            return Err(AuthError::invalid("the token has no sub or no exp claim"));
        };
        let subject = Subject::parse(&sub)
            .map_err(|e| AuthError::invalid(format!("the token's sub cannot be used: {e}")))?;
        Ok(Credential {
            subject,
            expires_at: Some(exp),
        })
    }

    /// The key a token names, fetching the set when it is stale, or (rate limited) when it lacks
    /// the key id.
    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let KeySource::Url { .. } = self.source else {
            return self.read_keys().find(kid).ok_or_else(|| unknown_key(kid));
        };
        let stale = self
            .read_keys()
            .stale_at
            .is_none_or(|at| Instant::now() >= at);
        if stale {
            self.refresh(|set| set.stale_at.is_none_or(|at| Instant::now() >= at))
                .await;
        }
        if let Some(key) = self.read_keys().find(kid) {
            return Ok(key);
        }
        let min_refetch = self.min_refetch;
        let may_refetch = |set: &KeySet| {
            set.find(kid).is_none()
                && set
                    .last_unknown_refetch
                    .is_none_or(|at| at.elapsed() >= min_refetch)
        };
        if may_refetch(&self.read_keys()) {
            self.refresh(|set| {
                let due = may_refetch(set);
                if due {
                    set.last_unknown_refetch = Some(Instant::now());
                }
                due
            })
            .await;
        }
        let set = self.read_keys();
        if let Some(key) = set.find(kid) {
            return Ok(key);
        }
        if set.keys.is_empty() {
            return Err(AuthError::Unavailable(
                "the identity provider's keys cannot be fetched now; try again shortly".into(),
            ));
        }
        Err(unknown_key(kid))
    }

    /// Fetches the set if `due` (checked again once this caller holds the fetch, as another
    /// may just have done it); a failed fetch keeps the keys there were.
    async fn refresh(&self, due: impl FnOnce(&mut KeySet) -> bool) {
        let KeySource::Url { url, client } = &self.source else {
            return;
        };
        let _fetching = self.fetching.lock().await;
        if !due(&mut self.keys.write().unwrap_or_else(|e| e.into_inner())) {
            return;
        }
        match fetch(client, url).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), %url, "fetched the JWKS");
                self.replace_keys(keys);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), %url, "cannot fetch the JWKS");
                let mut set = self.keys.write().unwrap_or_else(|e| e.into_inner());
                set.stale_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
            }
        }
    }

    fn replace_keys(&self, keys: Vec<(Option<String>, DecodingKey)>) {
        let mut set = self.keys.write().unwrap_or_else(|e| e.into_inner());
        set.keys = keys;
        set.stale_at = Some(Instant::now() + self.cache_for);
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn unknown_key(kid: Option<&str>) -> AuthError {
    match kid {
        Some(kid) => AuthError::invalid(format!(
            "the token's key id {kid:?} is not among the identity provider's keys"
        )),
        None => AuthError::invalid("the token names no key id (kid)"),
    }
}

/// Why the library refused a token, in words a client can act on.
fn refusal(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer (iss) is not the configured one".into(),
        ErrorKind::InvalidAudience => "the token's audience (aud) is not this service".into(),
        ErrorKind::InvalidSignature => "the token's signature does not match".into(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        _ => "the token cannot be read".into(),
    }
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<Vec<(Option<String>, DecodingKey)>> {
    let mut response = client.get(url).send().await?.error_for_status()?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        anyhow::ensure!(
            body.len() <= MAX_JWKS_BYTES,
            "the JWKS is larger than 1 MiB"
        );
    }
    parse_jwks(&body)
}

fn read_file(path: &PathBuf) -> anyhow::Result<Vec<(Option<String>, DecodingKey)>> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read auth.jwt.jwks_file {}: {e}", path.display()))?;
    parse_jwks(&bytes)
}

/// The signing keys of a JWKS, each with its key id. Keys this version cannot use (another key
/// type, encryption keys) are skipped rather than spoiling the set.
fn parse_jwks(bytes: &[u8]) -> anyhow::Result<Vec<(Option<String>, DecodingKey)>> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("not a JWKS (a JSON object with \"keys\"): {e}"))?;
    let mut seen = HashSet::new();
    let keys: Vec<_> = set
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter(|jwk| jwk.common.public_key_use != Some(PublicKeyUse::Encryption))
        .filter_map(|jwk| {
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((jwk.common.key_id, key))
        })
        .filter(|(kid, _)| seen.insert(kid.clone()))
        .collect();
    anyhow::ensure!(!keys.is_empty(), "the JWKS holds no usable signing key");
    Ok(keys)
}
