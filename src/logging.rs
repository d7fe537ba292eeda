//! Where pixdrop's log lines go and how they look: `tracing` for everything, the HTTP request lines
//! included (`http::access_log`), human-readable text or one JSON object a line (`[log]` settings),
//! filtered by `RUST_LOG` when it is set. A job's lines carry its id through the span its worker
//! opens, so `job_id` is on every line of a job's life, from either format.

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use crate::validate::Checks;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event, for a terminal or journald.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`), for a
    /// log collector.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// What to log, in `RUST_LOG`'s syntax (`info`, `pixdrop=debug,info`); `RUST_LOG`, when set,
    /// takes precedence.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info,actix_server=warn".into(),
        }
    }
}

impl LogSettings {
    pub fn check(&self, checks: &mut Checks) {
        if let Err(e) = EnvFilter::builder().parse(&self.filter) {
            checks.refuse(
                "log.filter",
                format!("log.filter ({:?}) is not a valid filter: {e}", self.filter),
            );
        }
    }

    /// Installs the process's subscriber; call once, before anything logs.
    pub fn install(&self) {
        let filter = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::builder().parse(&self.filter))
            .unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        match self.format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
    }
}
