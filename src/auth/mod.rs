//! Who is calling. A request's `Authorization: Bearer` credential becomes a [`Credential`]: the
//! [`Subject`] that owns what it uploads, and when the credential stops being valid. How it is
//! proven is `[auth]`'s `mode`: off (every caller is the anonymous subject), API tokens
//! (`tokens.rs`) or an identity provider's JWTs (`jwt.rs`). Tokens and a JWKS file are re-read on
//! [`Authenticator::reload`] (SIGHUP), so revoking a token needs no restart.
//!
//! Media URLs handed to a job's owner are signed (`signing.rs`); a browser's websocket signs in
//! with a single-use ticket (`tickets.rs`). Each subject's uploads, stored bytes and open sockets
//! are bounded across instances (`quotas.rs`).
//!
//! This module knows nothing of HTTP: `http::caller` reads the header and answers refusals.

pub mod delete_token;
pub mod quotas;
pub mod settings;
pub mod signing;
pub mod tickets;
pub mod tokens;

mod jwt;

use arc_swap::ArcSwap;

use crate::queue::Subject;
use jwt::JwtVerifier;
pub use settings::{AuthMode, AuthSettings};
use tokens::TokenTable;

/// A proven caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub subject: Subject,
    /// When the credential lapses (Unix seconds); `None` for one that does not (an API token,
    /// anonymous).
    pub expires_at: Option<u64>,
}

impl Credential {
    pub fn anonymous() -> Self {
        Self {
            subject: Subject::anonymous(),
            expires_at: None,
        }
    }
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("sign-in required: send Authorization: Bearer <token>")]
    Missing,
    #[error("the Authorization header must use the Bearer scheme")]
    WrongScheme,
    #[error("{0}")]
    Invalid(String),
    /// The credential cannot be checked now (the identity provider's keys are unreachable).
    #[error("{0}")]
    Unavailable(String),
}

impl AuthError {
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid(reason.into())
    }
}

/// Redis could not be asked (tickets, quotas): nothing was taken or changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no redis connection available: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
}

/// Checks credentials as `[auth]` says; shared by every request.
pub struct Authenticator {
    mode: AuthMode,
    /// Swapped whole on reload: a request sees the old table or the new, never a mix.
    tokens: ArcSwap<TokenTable>,
    jwt: Option<JwtVerifier>,
    /// `auth.admins`, swapped whole on reload like the tokens.
    admins: ArcSwap<Vec<Subject>>,
    admin_on_loopback: bool,
}

impl Authenticator {
    /// From checked settings. `allowed_origins`: the origins a JWT's `azp` may name.
    pub fn new(settings: &AuthSettings, allowed_origins: &[String]) -> anyhow::Result<Self> {
        let jwt = match settings.mode {
            AuthMode::Jwt => Some(JwtVerifier::new(&settings.jwt, allowed_origins)?),
            _ => None,
        };
        let tokens = TokenTable::new(&settings.tokens);
        if settings.mode == AuthMode::Tokens && tokens.is_empty() {
            tracing::warn!(
                "auth.mode is \"tokens\" but no [[auth.tokens]] are listed: every request will be refused"
            );
        }
        Ok(Self {
            mode: settings.mode,
            tokens: ArcSwap::from_pointee(tokens),
            jwt,
            admins: ArcSwap::from_pointee(admins_of(settings)),
            admin_on_loopback: settings.admin_on_loopback,
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Puts the tokens of `settings` in force, and re-reads a JWKS file. The mode itself changes
    /// only with a restart: a reload that asks for another is refused, and nothing changes.
    pub fn reload(&self, settings: &AuthSettings) -> anyhow::Result<()> {
        anyhow::ensure!(
            settings.mode == self.mode,
            "auth.mode changed from {:?} to {:?}: restart pixdrop to change it",
            self.mode.as_str(),
            settings.mode.as_str()
        );
        if let Some(jwt) = &self.jwt {
            jwt.reload()?;
        }
        let tokens = TokenTable::new(&settings.tokens);
        tracing::info!(tokens = tokens.len(), "auth settings reloaded");
        self.tokens.store(std::sync::Arc::new(tokens));
        self.admins.store(std::sync::Arc::new(admins_of(settings)));
        Ok(())
    }

    /// `auth.admin_on_loopback`: without sign-in, loopback callers are administrators.
    pub fn admin_on_loopback(&self) -> bool {
        self.admin_on_loopback
    }

    /// Whether `subject` is one of `auth.admins` (never the anonymous subject).
    pub fn is_admin(&self, subject: &Subject) -> bool {
        subject.name().is_some() && self.admins.load().contains(subject)
    }

    /// The caller an `Authorization` header value proves (`None`: no header).
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
    ) -> Result<Credential, AuthError> {
        if self.mode == AuthMode::Off {
            return Ok(Credential::anonymous());
        }
        let token = bearer_token(authorization.ok_or(AuthError::Missing)?)?;
        match &self.jwt {
            Some(jwt) => jwt.verify(token).await,
            None => self
                .tokens
                .load()
                .subject_of(token)
                .map(|subject| Credential {
                    subject,
                    expires_at: None,
                })
                .ok_or_else(|| AuthError::invalid("the token is not valid (unknown or revoked)")),
        }
    }
}

/// `auth.admins` as subjects (checked at load, so none is dropped here but a malformed one).
fn admins_of(settings: &AuthSettings) -> Vec<Subject> {
    settings
        .admins
        .iter()
        .filter_map(|name| Subject::parse(name).ok())
        .collect()
}

/// The token of `Bearer <token>` (the scheme in any case, RFC 7235).
pub fn bearer_token(header: &[u8]) -> Result<&str, AuthError> {
    let header = std::str::from_utf8(header).map_err(|_| AuthError::WrongScheme)?;
    let (scheme, token) = header.split_once(' ').ok_or(AuthError::WrongScheme)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::WrongScheme);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::invalid("the bearer token is empty"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bearer_scheme_carries_a_token() {
        assert_eq!(bearer_token(b"Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token(b"bearer  abc "), Ok("abc"));
        assert_eq!(
            bearer_token(b"Basic YWxpY2U6c2VjcmV0"),
            Err(AuthError::WrongScheme)
        );
        assert_eq!(bearer_token(b"Bearer"), Err(AuthError::WrongScheme));
        assert_eq!(bearer_token(b"abc"), Err(AuthError::WrongScheme));
        assert!(matches!(
            bearer_token(b"Bearer  "),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(bearer_token(b"Bearer \xff"), Err(AuthError::WrongScheme));
    }
}
