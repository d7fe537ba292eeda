//! Where pixdrop's Redis comes from: the configured URL, or else the embedded `redis-server` of the
//! storage directory, which the first pixdrop command starts and the others join
//! (`embedded_redis`). Owns the `[redis]` settings.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::embedded_redis::EmbeddedRedis;
use crate::queue::KeyPrefix;
use crate::validate::Checks;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://`, `rediss://` (TLS) or `redis+unix://`, with user and password if needed. Unset or
    /// empty: pixdrop starts and owns its own `redis-server`.
    pub url: Option<String>,
    /// Every key starts with `{prefix}:`; the braces make it a Redis Cluster hash tag, so all of
    /// pixdrop's keys live in one slot and every script is cluster-safe.
    pub key_prefix: String,
    /// Connections in the shared pool (HTTP handlers, scheduler, reaper). Workers hold their own.
    pub pool_size: usize,
    /// The `redis-server` binary started when no `url` is set.
    pub server_binary: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "pixdrop".into(),
            pool_size: 16,
            server_binary: "redis-server".into(),
        }
    }
}

impl RedisSettings {
    pub fn check(&self, checks: &mut Checks) {
        if let Some(url) = self.external_url() {
            checks.require(redis::parse_redis_url(url).is_some(), "redis.url", || {
                format!(
                    "redis.url ({}) is not a Redis URL: redis://, rediss:// or redis+unix://",
                    redact(url)
                )
            });
        }
        if let Err(why) = KeyPrefix::parse(&self.key_prefix) {
            checks.refuse(
                "redis.key_prefix",
                format!("redis.key_prefix ({:?}) {why}", self.key_prefix),
            );
        }
        checks.at_least("redis.pool_size", self.pool_size, 1);
        checks.require(
            !self.server_binary.trim().is_empty(),
            "redis.server_binary",
            || "redis.server_binary must name the redis-server program".into(),
        );
    }

    /// The configured URL, treating an empty string (as an environment override may give) as unset.
    pub fn external_url(&self) -> Option<&str> {
        self.url.as_deref().map(str::trim).filter(|u| !u.is_empty())
    }

    /// The checked key prefix.
    pub fn key_prefix(&self) -> anyhow::Result<KeyPrefix> {
        KeyPrefix::parse(&self.key_prefix)
            .map_err(|why| anyhow::anyhow!("redis.key_prefix ({:?}) {why}", self.key_prefix))
    }
}

/// The Redis to use, and the embedded server when there is no `redis.url` (dropping it leaves
/// the server, stopping it if this process runs it).
pub struct RedisTarget {
    pub url: String,
    pub embedded: Option<EmbeddedRedis>,
}

impl RedisTarget {
    /// The configured Redis, or else the embedded server of `storage_dir`, joined or started.
    pub fn resolve(settings: &RedisSettings, storage_dir: &Path) -> anyhow::Result<Self> {
        if let Some(url) = settings.external_url() {
            redis::parse_redis_url(url)
                .with_context(|| format!("redis.url is not a valid Redis URL: {}", redact(url)))?;
            return Ok(Self {
                url: url.to_owned(),
                embedded: None,
            });
        }
        let embedded = EmbeddedRedis::open(&settings.server_binary, &storage_dir.join("redis"))?;
        Ok(Self {
            url: embedded.url().to_owned(),
            embedded: Some(embedded),
        })
    }

    /// Whether the embedded server is lost for good.
    pub fn is_lost(&self) -> bool {
        self.embedded.as_ref().is_some_and(EmbeddedRedis::is_lost)
    }

    /// Resolves if the embedded server is lost for good; never with an external Redis.
    pub fn lost(&self) -> impl Future<Output = ()> + use<> {
        let lost = self.embedded.as_ref().map(EmbeddedRedis::lost);
        async move {
            match lost {
                Some(lost) => lost.await,
                None => std::future::pending().await,
            }
        }
    }
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
