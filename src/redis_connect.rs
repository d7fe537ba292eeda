//! Where pixdrop's Redis comes from: the configured URL, or else a `redis-server` it starts and owns
//! under the storage directory (the embedded default).

use anyhow::Context;

use crate::config::Settings;
use crate::redis_server::{RedisServer, RedisServerOptions};

/// The Redis to use, and the embedded server when pixdrop owns one (dropping it stops the server).
pub struct RedisTarget {
    pub url: String,
    pub embedded: Option<RedisServer>,
}

impl RedisTarget {
    pub fn resolve(settings: &Settings) -> anyhow::Result<Self> {
        if let Some(url) = settings.redis.external_url() {
            redis::parse_redis_url(url)
                .with_context(|| format!("redis.url is not a valid Redis URL: {}", redact(url)))?;
            return Ok(Self {
                url: url.to_owned(),
                embedded: None,
            });
        }
        let dir = settings.storage.dir.join("redis");
        let server = RedisServer::start(RedisServerOptions {
            binary: settings.redis.server_binary.clone(),
            dir: dir.clone(),
            appendfsync: "everysec",
        })?;
        tracing::info!(
            port = server.port(),
            dir = %dir.display(),
            "no redis.url configured: started an embedded redis-server owned by this process"
        );
        Ok(Self {
            url: server.url(),
            embedded: Some(server),
        })
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
