//! Per-subject quotas, kept in Redis so every instance enforces the same ones: files uploaded
//! per minute (`429` with `Retry-After`), bytes of originals stored (`403`), and sockets open at
//! once (`429`). A limit of 0 is no limit. Anonymous callers (sign-in off) have no subject to
//! count against; the per-address limits of `[uploads]` and `[websocket]` bound them instead.
//!
//! Each check-and-take is one script (`lua/charge.lua`, `lua/socket_slot.lua`), so two instances
//! charging the same subject at once cannot both slip under a limit. A socket's place lapses
//! unless renewed, so a process that dies holding places frees them within a minute.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;
use serde::Deserialize;

use crate::queue::{KeyPrefix, Subject};
use crate::validate::Checks;

/// The `[quotas]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSettings {
    /// Files a subject may upload in a minute.
    pub uploads_per_minute: u64,
    /// Bytes of originals a subject may have stored.
    pub stored_bytes: u64,
    /// Websockets a subject may hold open at once, across instances.
    pub sockets: u64,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            uploads_per_minute: 300,
            stored_bytes: 10 << 30,
            sockets: 32,
        }
    }
}

impl QuotaSettings {
    pub fn check(&self, _checks: &mut Checks) {
        // Every value is meaningful: 0 lifts the limit, any other bounds it.
    }
}

/// A quota the request would pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverQuota {
    /// Too many files this minute; the window ends in this long.
    UploadRate {
        limit: u64,
        retry_after: Duration,
    },
    StoredBytes {
        used: u64,
        limit: u64,
    },
    Sockets {
        limit: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no redis connection available: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
}

type QuotaResult<T> = Result<Result<T, OverQuota>, QuotaError>;

/// How long a socket's place lasts unless renewed.
const SOCKET_PLACE_LAPSE: Duration = Duration::from_secs(60);
const UPLOAD_WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Quotas {
    pool: deadpool_redis::Pool,
    /// `{prefix}:quota:`.
    key_prefix: String,
    settings: QuotaSettings,
    charge: Script,
    socket_slot: Script,
}

impl Quotas {
    pub fn new(pool: deadpool_redis::Pool, prefix: &KeyPrefix, settings: &QuotaSettings) -> Self {
        Self {
            pool,
            key_prefix: format!("{{{prefix}}}:quota:"),
            settings: settings.clone(),
            charge: Script::new(include_str!("lua/charge.lua")),
            socket_slot: Script::new(include_str!("lua/socket_slot.lua")),
        }
    }

    fn key(&self, what: &str, name: &str) -> String {
        format!("{}{what}:{name}", self.key_prefix)
    }

    /// Takes `amount` from the allowance counted at `key` (a negative amount gives back); `Err`
    /// with what is used and how long until the count starts afresh when it would pass `limit`.
    async fn charge(
        &self,
        key: &str,
        amount: i64,
        limit: u64,
        window: Option<Duration>,
    ) -> Result<Result<(), (u64, Option<Duration>)>, QuotaError> {
        let mut conn = self.pool.get().await?;
        let answer: Vec<i64> = self
            .charge
            .key(key)
            .arg(amount)
            .arg(limit)
            .arg(window.map_or(0, |w| w.as_millis() as u64))
            .invoke_async(&mut conn)
            .await?;
        Ok(match answer.as_slice() {
            [1, ..] => Ok(()),
            [_, used, ttl] => Err((
                (*used).max(0) as u64,
                u64::try_from(*ttl).ok().map(Duration::from_millis),
            )),
            _ => Err((0, None)),
        })
    }

    /// Whether `subject` may upload at least one more file this minute (nothing is taken).
    pub async fn upload_room(&self, subject: &Subject) -> QuotaResult<()> {
        let (Some(name), limit @ 1..) = (subject.name(), self.settings.uploads_per_minute) else {
            return Ok(Ok(()));
        };
        // Nothing taken, against one less: refused exactly when the minute is used up.
        let charged = self
            .charge(
                &self.key("uploads", name),
                0,
                limit - 1,
                Some(UPLOAD_WINDOW),
            )
            .await?;
        Ok(charged.map_err(|(_, ttl)| upload_rate(limit, ttl)))
    }

    /// Takes `files` uploads from `subject`'s minute.
    pub async fn take_uploads(&self, subject: &Subject, files: u64) -> QuotaResult<()> {
        let (Some(name), limit @ 1..) = (subject.name(), self.settings.uploads_per_minute) else {
            return Ok(Ok(()));
        };
        let charged = self
            .charge(
                &self.key("uploads", name),
                files as i64,
                limit,
                Some(UPLOAD_WINDOW),
            )
            .await?;
        Ok(charged.map_err(|(_, ttl)| upload_rate(limit, ttl)))
    }

    /// Takes `bytes` from `subject`'s storage allowance.
    pub async fn take_bytes(&self, subject: &Subject, bytes: u64) -> QuotaResult<()> {
        let (Some(name), limit @ 1..) = (subject.name(), self.settings.stored_bytes) else {
            return Ok(Ok(()));
        };
        let charged = self
            .charge(&self.key("bytes", name), bytes as i64, limit, None)
            .await?;
        Ok(charged.map_err(|(used, _)| OverQuota::StoredBytes { used, limit }))
    }

    /// Gives back what an upload that was not accepted after all had taken. Through the same
    /// script: a minute's count that expired meanwhile starts again below zero and still expires.
    pub async fn refund(
        &self,
        subject: &Subject,
        files: u64,
        bytes: u64,
    ) -> Result<(), QuotaError> {
        let Some(name) = subject.name() else {
            return Ok(());
        };
        if self.settings.uploads_per_minute > 0 && files > 0 {
            let key = self.key("uploads", name);
            let _ = self
                .charge(&key, -(files as i64), u64::MAX >> 1, Some(UPLOAD_WINDOW))
                .await?;
        }
        if self.settings.stored_bytes > 0 && bytes > 0 {
            let key = self.key("bytes", name);
            let _ = self
                .charge(&key, -(bytes as i64), u64::MAX >> 1, None)
                .await?;
        }
        Ok(())
    }

    /// A place for one more open socket of `subject`.
    pub async fn take_socket(&self, subject: &Subject) -> QuotaResult<SocketPlace> {
        let (Some(name), limit @ 1..) = (subject.name(), self.settings.sockets) else {
            return Ok(Ok(SocketPlace { held: None }));
        };
        let place = HeldPlace {
            quotas: self.clone(),
            key: self.key("sockets", name),
            id: hex::encode(rand::random::<[u8; 16]>()),
        };
        if place.call("take", limit).await? {
            Ok(Ok(SocketPlace { held: Some(place) }))
        } else {
            Ok(Err(OverQuota::Sockets { limit }))
        }
    }
}

/// A socket's place in its subject's quota (none for anonymous, or without a limit).
pub struct SocketPlace {
    held: Option<HeldPlace>,
}

struct HeldPlace {
    quotas: Quotas,
    key: String,
    id: String,
}

impl HeldPlace {
    async fn call(&self, action: &str, limit: u64) -> Result<bool, QuotaError> {
        let now = now_ms();
        let mut conn = self.quotas.pool.get().await?;
        let done: i64 = self
            .quotas
            .socket_slot
            .key(&self.key)
            .arg(action)
            .arg(&self.id)
            .arg(now)
            .arg(now + SOCKET_PLACE_LAPSE.as_millis() as u64)
            .arg(limit)
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }
}

impl SocketPlace {
    /// How often a holder must [`SocketPlace::renew`] to keep its place.
    pub const RENEW_EVERY: Duration = Duration::from_secs(20);

    /// Keeps the place for another while; a failure is only logged (the place lapses at worst,
    /// and the socket carries on: a quota is no reason to cut a live socket).
    pub async fn renew(&self) {
        if let Some(place) = &self.held
            && let Err(e) = place.call("renew", 0).await
        {
            tracing::debug!(error = %e, "cannot renew a socket's quota place");
        }
    }

    /// Gives the place back.
    pub async fn give_back(self) {
        if let Some(place) = &self.held
            && let Err(e) = place.call("give", 0).await
        {
            tracing::debug!(error = %e, "cannot give back a socket's quota place; it lapses");
        }
    }
}

fn upload_rate(limit: u64, ttl: Option<Duration>) -> OverQuota {
    OverQuota::UploadRate {
        limit,
        retry_after: ttl.unwrap_or(UPLOAD_WINDOW),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
