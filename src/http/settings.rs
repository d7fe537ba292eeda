//! The HTTP side's settings: where it listens (`[server]`), what an upload may be (`[uploads]`)
//! and how the live websocket behaves (`[websocket]`), each checked once when loaded.

use std::time::Duration;

use serde::Deserialize;

use crate::validate::Checks;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// Pages besides pixdrop's own that may upload, cancel, retry and watch jobs from a browser:
    /// origins such as `https://app.example.com`.
    pub allowed_origins: Vec<String>,
    /// Names pixdrop answers to (`Host`). Empty: loopback names on a loopback bind, any otherwise.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl ServerSettings {
    /// Whether `bind` is a loopback address, reachable from this host only.
    pub fn binds_loopback(&self) -> bool {
        super::origin::binds_loopback(&self.bind)
    }

    pub fn check(&self, checks: &mut Checks) {
        for origin in &self.allowed_origins {
            let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.trim_end_matches('/').contains('/')
            });
            checks.require(valid, "server.allowed_origins", || {
                format!(
                    "server.allowed_origins: {origin:?} is not an origin like \"https://app.example.com\""
                )
            });
        }
        for host in &self.allowed_hosts {
            checks.require(
                !host.is_empty() && !host.contains(['/', ' ']),
                "server.allowed_hosts",
                || format!("server.allowed_hosts: {host:?} is not a host name"),
            );
        }
        checks.require(
            self.bind
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()),
            "server.bind",
            || {
                format!(
                    "server.bind ({:?}) must be HOST:PORT, e.g. \"127.0.0.1:8080\" or \"[::]:80\"",
                    self.bind
                )
            },
        );
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// Largest accepted file.
    pub max_file_bytes: u64,
    /// Most files in one request.
    pub max_files: usize,
    /// Largest request body, every byte of it: file data, other fields, part headers, boundaries.
    pub max_body_bytes: u64,
    /// Largest part header (its Content-Disposition and Content-Type lines).
    pub max_part_header_bytes: usize,
    /// Most non-file fields in one request, and the largest one.
    pub max_text_fields: usize,
    pub max_text_field_bytes: u64,
    /// The whole body must arrive within this long...
    pub body_timeout_secs: u64,
    /// ...and never pause longer than this between two chunks.
    pub body_idle_timeout_secs: u64,
    /// Most uploads in progress at once, in all and from one client address.
    pub max_concurrent: usize,
    pub max_concurrent_per_client: usize,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            max_file_bytes: 50 * 1024 * 1024,
            max_files: 20,
            max_body_bytes: 200 * 1024 * 1024,
            max_part_header_bytes: 16 * 1024,
            max_text_fields: 8,
            max_text_field_bytes: 16 * 1024,
            body_timeout_secs: 600,
            body_idle_timeout_secs: 30,
            max_concurrent: 128,
            max_concurrent_per_client: 8,
        }
    }
}

/// A part header names a field and a file: a few hundred bytes; below this, real ones would fail.
const MIN_PART_HEADER_BYTES: usize = 1024;

impl UploadSettings {
    pub fn check(&self, checks: &mut Checks) {
        checks.at_least("uploads.max_file_bytes", self.max_file_bytes, 1);
        checks.at_least("uploads.max_files", self.max_files, 1);
        checks.at_least("uploads.max_body_bytes", self.max_body_bytes, 1);
        checks.at_least(
            "uploads.max_part_header_bytes",
            self.max_part_header_bytes,
            MIN_PART_HEADER_BYTES,
        );
        checks.at_least(
            "uploads.body_idle_timeout_secs",
            self.body_idle_timeout_secs,
            1,
        );
        checks.require(
            self.body_timeout_secs >= self.body_idle_timeout_secs,
            "uploads.body_timeout_secs",
            || {
                format!(
                    "uploads.body_timeout_secs ({}) must be at least uploads.body_idle_timeout_secs ({})",
                    self.body_timeout_secs, self.body_idle_timeout_secs
                )
            },
        );
        checks.at_least("uploads.max_concurrent", self.max_concurrent, 1);
        checks.at_least(
            "uploads.max_concurrent_per_client",
            self.max_concurrent_per_client,
            1,
        );
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    pub fn body_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.body_idle_timeout_secs)
    }
}

/// How job files are served (`GET /media/...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// With sign-in on, media URLs are signed and expire, and are cached privately. `true` keeps
    /// them public and immutable, for a CDN in front; anyone with a URL can then fetch it.
    pub public: bool,
    /// The key signing media URLs (hex, at least 32 bytes). Unset: generated once and kept in
    /// `storage.dir/media-signing.key`. Instances serving the same files need the same key.
    pub signing_key: Option<String>,
    /// A signed URL lasts at least this long, at most half as long again (expiries are rounded
    /// up, so a URL stays the same, and cacheable, for a while).
    pub url_ttl_secs: u64,
    /// Who may download originals: as the variants (`public`), only at signed URLs handed to
    /// whoever may see the job (`private`), or no one (`none`). An original keeps its bytes, GPS
    /// position included.
    pub originals: super::media::OriginalsAccess,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            public: false,
            signing_key: None,
            url_ttl_secs: 3600,
            originals: super::media::OriginalsAccess::Public,
        }
    }
}

impl MediaSettings {
    pub fn check(&self, checks: &mut Checks) {
        checks.at_least("media.url_ttl_secs", self.url_ttl_secs, 60);
        if let Some(key) = &self.signing_key {
            checks.require(
                key.len() >= 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
                "media.signing_key",
                || "media.signing_key must be at least 64 hex digits (32 bytes); `openssl rand -hex 32` makes one".into(),
            );
        }
    }
}

/// The live-progress websocket (`GET /ws`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketSettings {
    /// How often the server pings each socket.
    pub ping_interval_secs: u64,
    /// A socket silent this long (no pong, no message) is closed.
    pub idle_timeout_secs: u64,
    /// Most jobs one socket may watch at once.
    pub max_subscriptions: usize,
    /// Largest message a client may send.
    pub max_message_bytes: usize,
    /// Events held for each socket before it counts as lagging and gets fresh snapshots instead.
    pub event_buffer: usize,
    /// Most sockets open at once, in all and from one client address.
    pub max_sockets: usize,
    pub max_sockets_per_client: usize,
    /// Messages a socket may send per second (bursts up to as many); more are refused, and a
    /// socket that keeps on is closed.
    pub max_messages_per_sec: u32,
    /// Most job ids in one subscribe or unsubscribe message.
    pub max_ids_per_message: usize,
    /// After Redis comes back, each socket re-reads its jobs at a random moment within this
    /// window, so thousands of sockets do not all ask at once.
    pub resync_spread_ms: u64,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            ping_interval_secs: 10,
            idle_timeout_secs: 30,
            max_subscriptions: 1000,
            max_message_bytes: 64 * 1024,
            event_buffer: 1024,
            max_sockets: 10_000,
            max_sockets_per_client: 64,
            max_messages_per_sec: 20,
            max_ids_per_message: 1000,
            resync_spread_ms: 2000,
        }
    }
}

/// A subscribe message for one job id is about 60 bytes; below this a client could hardly talk.
const MIN_MESSAGE_BYTES: usize = 256;
/// Fewer buffered events than this and a burst of one upload's progress already counts as lag.
const MIN_EVENT_BUFFER: usize = 16;

impl WebSocketSettings {
    pub fn check(&self, checks: &mut Checks) {
        checks.at_least("websocket.ping_interval_secs", self.ping_interval_secs, 1);
        checks.require(
            self.idle_timeout_secs > self.ping_interval_secs,
            "websocket.idle_timeout_secs",
            || {
                format!(
                    "websocket.idle_timeout_secs ({}) must be greater than websocket.ping_interval_secs ({}): \
                     a socket would be closed before it could answer a ping",
                    self.idle_timeout_secs, self.ping_interval_secs
                )
            },
        );
        checks.at_least("websocket.max_subscriptions", self.max_subscriptions, 1);
        checks.at_least(
            "websocket.max_message_bytes",
            self.max_message_bytes,
            MIN_MESSAGE_BYTES,
        );
        checks.at_least(
            "websocket.event_buffer",
            self.event_buffer,
            MIN_EVENT_BUFFER,
        );
        checks.at_least("websocket.max_sockets", self.max_sockets, 1);
        checks.at_least(
            "websocket.max_sockets_per_client",
            self.max_sockets_per_client,
            1,
        );
        checks.at_least(
            "websocket.max_messages_per_sec",
            self.max_messages_per_sec,
            1,
        );
        checks.at_least("websocket.max_ids_per_message", self.max_ids_per_message, 1);
    }

    pub fn resync_spread(&self) -> Duration {
        Duration::from_millis(self.resync_spread_ms)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}
