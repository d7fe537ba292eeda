//! The `[auth]` settings: who may call pixdrop, and how they prove it. Checked once at load.

use std::path::PathBuf;

use serde::Deserialize;

use crate::queue::Subject;
use crate::validate::Checks;

/// How callers prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No sign-in: every caller is the one anonymous subject.
    Off,
    /// `Authorization: Bearer <token>`, a token listed (by its SHA-256) in `[[auth.tokens]]`.
    Tokens,
    /// `Authorization: Bearer <JWT>` from an identity provider, checked against its JWKS.
    Jwt,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Tokens => "tokens",
            Self::Jwt => "jwt",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Serve without sign-in on a non-loopback address anyway (pixdrop refuses to, otherwise).
    pub allow_anonymous: bool,
    /// API tokens (`mode = "tokens"`): each a subject and the hex SHA-256 of its token.
    pub tokens: Vec<TokenEntry>,
    pub jwt: JwtSettings,
    /// Subjects who may use the admin API (purge content).
    pub admins: Vec<String>,
    /// Without sign-in, callers on the loopback address that no proxy forwarded are
    /// administrators. Off by default: behind a proxy on the same host that adds no forwarding
    /// header, every caller would be one.
    pub admin_on_loopback: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::Off,
            allow_anonymous: false,
            tokens: Vec::new(),
            jwt: JwtSettings::default(),
            admins: Vec::new(),
            admin_on_loopback: false,
        }
    }
}

/// One `[[auth.tokens]]` entry. The token itself never sits in the settings: only its digest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub subject: String,
    /// The token's SHA-256, 64 hex digits.
    pub sha256: String,
}

/// The signature algorithms a JWT may use; one is fixed by the settings, so a token cannot choose
/// its own (never `none`, never an HMAC keyed with a public key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    RS256,
    ES256,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// Where the identity provider publishes its keys, e.g.
    /// `https://your-app.clerk.accounts.dev/.well-known/jwks.json`. Or `jwks_file`.
    pub jwks_url: Option<String>,
    /// The keys as a JWKS file, read at start (and on reload).
    pub jwks_file: Option<PathBuf>,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry, when set.
    pub audience: Option<String>,
    pub algorithm: JwtAlgorithm,
    /// Clock difference tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Keys fetched from `jwks_url` are used this long before they are fetched again.
    pub jwks_cache_secs: u64,
    /// A token naming a key the cached set lacks (a rotation) fetches the set again, at most once
    /// in this long, so made-up key ids cannot hammer the identity provider.
    pub jwks_min_refetch_secs: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            jwks_url: None,
            jwks_file: None,
            issuer: String::new(),
            audience: None,
            algorithm: JwtAlgorithm::RS256,
            leeway_secs: 30,
            jwks_cache_secs: 3600,
            jwks_min_refetch_secs: 60,
        }
    }
}

impl AuthSettings {
    /// `loopback_bind`: whether `server.bind` is a loopback address, where `mode = "off"` is safe.
    pub fn check(&self, checks: &mut Checks, loopback_bind: bool) {
        checks.require(
            self.mode != AuthMode::Off || loopback_bind || self.allow_anonymous,
            "auth.mode",
            || {
                "auth.mode is \"off\" but server.bind is not a loopback address: anyone who can \
                 reach pixdrop could upload and read every job. Set auth.mode = \"tokens\" or \
                 \"jwt\", or auth.allow_anonymous = true to serve without sign-in on purpose"
                    .into()
            },
        );
        let mut digests = Vec::new();
        for (i, entry) in self.tokens.iter().enumerate() {
            checks.require(
                Subject::parse(&entry.subject).is_ok(),
                "auth.tokens",
                || {
                    format!(
                        "auth.tokens[{i}].subject ({:?}) must be 1 to {} printable ASCII characters without spaces",
                        entry.subject,
                        Subject::MAX_LEN
                    )
                },
            );
            let digest = entry.sha256.to_ascii_lowercase();
            checks.require(
                digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                "auth.tokens",
                || {
                    format!(
                        "auth.tokens[{i}].sha256 must be 64 hex digits, the SHA-256 of the token \
                         (`pixdrop token new SUBJECT` prints it)"
                    )
                },
            );
            checks.require(!digests.contains(&digest), "auth.tokens", || {
                format!("auth.tokens[{i}].sha256 is listed twice")
            });
            digests.push(digest);
        }
        for (i, admin) in self.admins.iter().enumerate() {
            checks.require(Subject::parse(admin).is_ok(), "auth.admins", || {
                format!(
                    "auth.admins[{i}] ({admin:?}) must be a subject: 1 to {} printable ASCII characters without spaces",
                    Subject::MAX_LEN
                )
            });
        }
        if self.mode == AuthMode::Jwt {
            self.jwt.check(checks);
        }
    }
}

impl JwtSettings {
    fn check(&self, checks: &mut Checks) {
        checks.require(
            self.jwks_url.is_some() != self.jwks_file.is_some(),
            "auth.jwt.jwks_url",
            || "auth.jwt: set one of jwks_url and jwks_file, where the provider's keys are".into(),
        );
        if let Some(url) = &self.jwks_url {
            checks.require(
                url.starts_with("https://") || url.starts_with("http://"),
                "auth.jwt.jwks_url",
                || format!("auth.jwt.jwks_url ({url:?}) must be an http(s) URL"),
            );
        }
        checks.require(!self.issuer.is_empty(), "auth.jwt.issuer", || {
            "auth.jwt.issuer must name the issuer (iss) of the provider's tokens".into()
        });
        checks.require(self.leeway_secs <= 300, "auth.jwt.leeway_secs", || {
            format!(
                "auth.jwt.leeway_secs ({}) must be at most 300",
                self.leeway_secs
            )
        });
        checks.at_least("auth.jwt.jwks_cache_secs", self.jwks_cache_secs, 1);
    }
}
