//! Websocket tickets. A browser cannot put an `Authorization` header on a websocket, so it asks
//! `POST /ws/ticket` (authenticated as usual) for a ticket and opens `/ws?ticket=...`. A ticket is
//! 32 random bytes, good for one upgrade within [`TICKET_TTL`], on any instance: it lives in Redis
//! (under its SHA-256, so a look at Redis reveals no usable ticket), and the upgrade takes it with
//! GETDEL, so of two upgrades racing with one ticket exactly one gets it.

use std::time::Duration;

use base64::Engine;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Credential, StoreError};
use crate::queue::{KeyPrefix, Subject};

pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// What a ticket stands for, as kept in Redis.
#[derive(Serialize, Deserialize)]
struct Stored {
    subject: Option<String>,
    expires_at: Option<u64>,
}

#[derive(Clone)]
pub struct Tickets {
    pool: deadpool_redis::Pool,
    /// `{prefix}:ws-ticket:`; the digest follows.
    key_prefix: String,
}

impl Tickets {
    pub fn new(pool: deadpool_redis::Pool, prefix: &KeyPrefix) -> Self {
        Self {
            pool,
            key_prefix: format!("{}:ws-ticket:", prefix.tag()),
        }
    }

    fn key(&self, ticket: &str) -> String {
        format!("{}{}", self.key_prefix, hex::encode(Sha256::digest(ticket)))
    }

    /// A fresh ticket for `credential`.
    pub async fn issue(&self, credential: &Credential) -> Result<String, StoreError> {
        let bytes: [u8; 32] = rand::random();
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let stored = Stored {
            subject: credential.subject.name().map(str::to_owned),
            expires_at: credential.expires_at,
        };
        let value = serde_json::to_string(&stored).expect("a ticket serialises");
        let mut conn = self.pool.get().await?;
        let () = conn
            .set_ex(self.key(&ticket), value, TICKET_TTL.as_secs())
            .await?;
        Ok(ticket)
    }

    /// The credential `ticket` was issued for, taking it: `None` when it is unknown, used or
    /// expired.
    pub async fn redeem(&self, ticket: &str) -> Result<Option<Credential>, StoreError> {
        // Bounded before it reaches Redis: a real ticket is 43 characters.
        if ticket.is_empty() || ticket.len() > 128 {
            return Ok(None);
        }
        let mut conn = self.pool.get().await?;
        let value: Option<String> = conn.get_del(self.key(ticket)).await?;
        let Some(stored) = value.and_then(|v| serde_json::from_str::<Stored>(&v).ok()) else {
            return Ok(None);
        };
        let subject = match stored.subject {
            Some(name) => match Subject::parse(&name) {
                Ok(subject) => subject,
                Err(_) => return Ok(None),
            },
            None => Subject::anonymous(),
        };
        Ok(Some(Credential {
            subject,
            expires_at: stored.expires_at,
        }))
    }
}
