//! Settings: built-in defaults, then `config.toml` (or `--config PATH`), then environment
//! variables `PIXDROP__SECTION__KEY` (e.g. `PIXDROP__REDIS__URL`). Every field has a default, so
//! a missing file is not an error unless its path was given explicitly.
//!
//! Each section is owned, and checked, by the module that uses it; this module only composes
//! them and runs every check once, at load. An invalid value stops the process at start with a
//! message naming each setting at fault (see `crate::validate`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::auth::AuthSettings;
use crate::auth::quotas::QuotaSettings;
use crate::http::metrics::MetricsSettings;
use crate::http::settings::{MediaSettings, ServerSettings, UploadSettings, WebSocketSettings};
use crate::logging::LogSettings;
use crate::pipeline::{Limits, VariantSpec};
use crate::queue::{QueueSettings, WorkerSettings};
use crate::redis_connect::RedisSettings;
use crate::storage::StorageSettings;
use crate::validate::{Checks, InvalidSetting};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    /// Who may call, and how they prove it.
    pub auth: AuthSettings,
    /// What each signed-in subject may use.
    pub quotas: QuotaSettings,
    pub redis: RedisSettings,
    pub workers: WorkerSettings,
    pub queue: QueueSettings,
    pub storage: StorageSettings,
    pub uploads: UploadSettings,
    pub websocket: WebSocketSettings,
    pub media: MediaSettings,
    /// Limits checked from an image's header before it is decoded.
    pub pipeline: Limits,
    /// The WebP variants made of every upload (`[[variants]]` tables).
    pub variants: Vec<VariantSpec>,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::default(),
            auth: AuthSettings::default(),
            quotas: QuotaSettings::default(),
            redis: RedisSettings::default(),
            workers: WorkerSettings::default(),
            queue: QueueSettings::default(),
            storage: StorageSettings::default(),
            uploads: UploadSettings::default(),
            websocket: WebSocketSettings::default(),
            media: MediaSettings::default(),
            pipeline: Limits::default(),
            variants: VariantSpec::defaults(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

/// Settings that failed their checks: every problem, one a line.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
pub struct InvalidSettings(pub Vec<InvalidSetting>);

impl Settings {
    /// Loads defaults, then the file (required only when `path` was given), then the environment,
    /// and checks the result.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let (file, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("config.toml"), false),
        };
        let built = config::Config::builder()
            .add_source(config::File::from(file.as_path()).required(required))
            .add_source(
                config::Environment::with_prefix("PIXDROP")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .with_context(|| format!("failed to read settings from {}", file.display()))?;
        let settings: Self = built.try_deserialize().with_context(|| {
            format!(
                "invalid settings in {} or PIXDROP__* variables",
                file.display()
            )
        })?;
        settings.validate().with_context(|| {
            format!("settings from {} and PIXDROP__* variables", file.display())
        })?;
        Ok(settings)
    }

    /// Runs every section's checks; `Err` lists every setting at fault.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let mut checks = Checks::new();
        self.server.check(&mut checks);
        self.auth.check(&mut checks, self.server.binds_loopback());
        self.redis.check(&mut checks);
        self.workers.check(&mut checks);
        self.queue.check(&mut checks);
        self.storage.check(&mut checks);
        self.uploads.check(&mut checks);
        self.websocket.check(&mut checks);
        self.media.check(&mut checks);
        self.log.check(&mut checks);
        self.metrics.check(&mut checks);
        for (field, problem) in self.pipeline.problems() {
            checks.refuse(&format!("pipeline.{field}"), format!("pipeline.{problem}"));
        }
        checks.require(!self.variants.is_empty(), "variants", || {
            "variants: at least one [[variants]] table is needed".into()
        });
        if let Some(name) = VariantSpec::first_duplicate(&self.variants) {
            checks.refuse(
                "variants",
                format!("variants: the name {name:?} is used twice; each variant's file is named after it"),
            );
        }
        checks.finish().map_err(InvalidSettings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_and_the_shipped_config_toml_are_valid() {
        // Proves a fresh checkout starts: neither the defaults nor config.toml trip a check.
        Settings::default().validate().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        Settings::load(Some(&shipped)).unwrap();
    }

    #[test]
    fn a_public_bind_without_sign_in_is_refused_unless_anonymous_service_is_meant() {
        let mut settings = Settings::default();
        settings.server.bind = "0.0.0.0:8080".into();
        let message = settings.validate().unwrap_err().to_string();
        assert!(
            message.contains("auth.mode is \"off\" but server.bind is not a loopback address"),
            "{message}"
        );
        assert!(message.contains("auth.allow_anonymous = true"), "{message}");
        settings.auth.allow_anonymous = true;
        settings.validate().unwrap();
        settings.auth.allow_anonymous = false;
        settings.auth.mode = crate::auth::AuthMode::Tokens;
        settings.validate().unwrap();
        settings.auth.mode = crate::auth::AuthMode::Jwt;
        let message = settings.validate().unwrap_err().to_string();
        assert!(
            message.contains("auth.jwt: set one of jwks_url and jwks_file"),
            "{message}"
        );
        assert!(message.contains("auth.jwt.issuer"), "{message}");
    }

    #[test]
    fn token_entries_need_a_usable_subject_and_a_sha256_listed_once() {
        let entry = |subject: &str, sha256: &str| crate::auth::settings::TokenEntry {
            subject: subject.into(),
            sha256: sha256.into(),
        };
        let digest = "a".repeat(64);
        let mut settings = Settings::default();
        settings.auth.tokens = vec![entry("alice", &digest), entry("bob", &digest)];
        settings
            .auth
            .tokens
            .push(entry("has space", &"b".repeat(64)));
        settings.auth.tokens.push(entry("carol", "not-hex"));
        let message = settings.validate().unwrap_err().to_string();
        for expected in [
            "auth.tokens[1].sha256 is listed twice",
            "auth.tokens[2].subject (\"has space\")",
            "auth.tokens[3].sha256 must be 64 hex digits",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} missing from:\n{message}"
            );
        }
    }

    #[test]
    fn every_invalid_setting_is_named_in_one_error() {
        // Proves one start-up reports each problem, across sections, naming the setting.
        let mut settings = Settings::default();
        settings.queue.heartbeat_ttl_ms = 1000;
        settings.queue.heartbeat_interval_ms = 2000;
        settings.redis.key_prefix = String::new();
        settings.workers.concurrency = Some(0);
        settings.variants.push(VariantSpec::thumb());
        let message = settings.validate().unwrap_err().to_string();
        for expected in [
            "queue.heartbeat_ttl_ms (1000) must be greater than queue.heartbeat_interval_ms (2000)",
            "redis.key_prefix",
            "workers.concurrency (0) must be at least 1",
            "the name \"thumb\" is used twice",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} missing from:\n{message}"
            );
        }
    }
}
