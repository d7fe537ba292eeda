//! Per-subject quotas, kept in Redis so every instance enforces the same ones: files uploaded
//! per minute (`429` with `Retry-After`), bytes of originals stored (`403`), and sockets open at
//! once (`429`). A limit of 0 is no limit. Anonymous callers (sign-in off) have no subject to
//! count against; the per-address limits of `[uploads]` and `[websocket]` bound them instead.
//!
//! Each check-and-take is one script (`lua/charge.lua`, `lua/socket_slot.lua`), so two instances
//! charging the same subject at once cannot both slip under a limit, and an upload takes its files
//! and its bytes together or not at all. A socket's place lapses unless renewed, so a process that
//! dies holding places frees them within a minute.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;
use serde::Deserialize;

use super::StoreError;
use crate::queue::{KeyPrefix, Subject};

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

type QuotaResult<T> = Result<Result<T, OverQuota>, StoreError>;

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
            key_prefix: format!("{}:quota:", prefix.tag()),
            settings: settings.clone(),
            charge: Script::new(include_str!("lua/charge.lua")),
            socket_slot: Script::new(include_str!("lua/socket_slot.lua")),
        }
    }

    fn key(&self, what: &str, name: &str) -> String {
        format!("{}{what}:{name}", self.key_prefix)
    }

    /// Takes every charge, or none: `Err` with the first whose limit it would pass, what that
    /// counter holds and how long until it starts afresh.
    async fn charge(&self, charges: &[Charge]) -> Result<Result<(), Refused>, StoreError> {
        if charges.is_empty() {
            return Ok(Ok(()));
        }
        let mut invocation = self.charge.prepare_invoke();
        for charge in charges {
            invocation
                .key(&charge.key)
                .arg(charge.amount)
                .arg(charge.limit)
                .arg(charge.window.map_or(0, |w| w.as_millis() as u64));
        }
        let mut conn = self.pool.get().await?;
        let answer: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Ok(match answer.as_slice() {
            [0] => Ok(()),
            [i, used, ttl] => Err(Refused {
                kind: charges[(*i as usize).clamp(1, charges.len()) - 1].kind,
                used: (*used).max(0) as u64,
                ttl: u64::try_from(*ttl).ok().map(Duration::from_millis),
            }),
            _ => Err(Refused {
                kind: charges[0].kind,
                used: 0,
                ttl: None,
            }),
        })
    }

    /// The charges of an upload of `files` files and `bytes` bytes by `subject`, `sign` 1 to take
    /// and -1 to give back: the bytes first, then the files, each only where it has a limit.
    fn upload_charges(&self, subject: &Subject, files: u64, bytes: u64, sign: i64) -> Vec<Charge> {
        let Some(name) = subject.name() else {
            return Vec::new();
        };
        // Giving back never passes a limit.
        let limit = |limit: u64| if sign < 0 { u64::MAX >> 1 } else { limit };
        let mut charges = Vec::new();
        if self.settings.stored_bytes > 0 {
            charges.push(Charge {
                kind: Allowance::Bytes,
                key: self.key("bytes", name),
                amount: sign * bytes as i64,
                limit: limit(self.settings.stored_bytes),
                window: None,
            });
        }
        if self.settings.uploads_per_minute > 0 {
            charges.push(Charge {
                kind: Allowance::Uploads,
                key: self.key("uploads", name),
                amount: sign * files as i64,
                limit: limit(self.settings.uploads_per_minute),
                window: Some(UPLOAD_WINDOW),
            });
        }
        charges
    }

    /// Whether `subject` may upload at least one more file this minute (nothing is taken).
    pub async fn upload_room(&self, subject: &Subject) -> QuotaResult<()> {
        let mut charges = self.upload_charges(subject, 0, 0, 1);
        charges.retain(|charge| charge.kind == Allowance::Uploads);
        // Nothing taken, against one less: refused exactly when the minute is used up.
        for charge in &mut charges {
            charge.limit -= 1;
        }
        Ok(self
            .charge(&charges)
            .await?
            .map_err(|refused| refused.over(&self.settings)))
    }

    /// Takes an upload of `files` files and `bytes` bytes from `subject`'s allowances: both, or
    /// neither when either would pass its limit.
    pub async fn take_upload(&self, subject: &Subject, files: u64, bytes: u64) -> QuotaResult<()> {
        let charges = self.upload_charges(subject, files, bytes, 1);
        Ok(self
            .charge(&charges)
            .await?
            .map_err(|refused| refused.over(&self.settings)))
    }

    /// Gives back what an upload that was not accepted after all had taken. Through the same
    /// script: a minute's count that expired meanwhile starts again below zero and still expires.
    pub async fn refund(
        &self,
        subject: &Subject,
        files: u64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        let charges = self.upload_charges(subject, files, bytes, -1);
        self.charge(&charges).await?.ok();
        Ok(())
    }

    /// Gives back the stored bytes of an upload that was deleted (or expired): the files it took
    /// count against the minute they were uploaded in, and stay counted.
    pub async fn release_stored(&self, subject: &Subject, bytes: u64) -> Result<(), StoreError> {
        let mut charges = self.upload_charges(subject, 0, bytes, -1);
        charges.retain(|charge| charge.kind == Allowance::Bytes);
        self.charge(&charges).await?.ok();
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
    async fn call(&self, action: &str, limit: u64) -> Result<bool, StoreError> {
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

/// The counted allowances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowance {
    Uploads,
    Bytes,
}

/// One amount to take from one counter.
struct Charge {
    kind: Allowance,
    key: String,
    amount: i64,
    limit: u64,
    window: Option<Duration>,
}

/// The charge a counter refused.
struct Refused {
    kind: Allowance,
    used: u64,
    ttl: Option<Duration>,
}

impl Refused {
    fn over(self, settings: &QuotaSettings) -> OverQuota {
        match self.kind {
            Allowance::Uploads => OverQuota::UploadRate {
                limit: settings.uploads_per_minute,
                retry_after: self.ttl.unwrap_or(UPLOAD_WINDOW),
            },
            Allowance::Bytes => OverQuota::StoredBytes {
                used: self.used,
                limit: settings.stored_bytes,
            },
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
