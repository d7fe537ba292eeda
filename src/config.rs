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

use crate::http::settings::{ServerSettings, UploadSettings, WebSocketSettings};
use crate::pipeline::{Limits, VariantSpec};
use crate::queue::{QueueSettings, WorkerSettings};
use crate::redis_connect::RedisSettings;
use crate::storage::StorageSettings;
use crate::validate::{Checks, InvalidSetting};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub workers: WorkerSettings,
    pub queue: QueueSettings,
    pub storage: StorageSettings,
    pub uploads: UploadSettings,
    pub websocket: WebSocketSettings,
    /// Limits checked from an image's header before it is decoded.
    pub pipeline: Limits,
    /// The WebP variants made of every upload (`[[variants]]` tables).
    pub variants: Vec<VariantSpec>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::default(),
            redis: RedisSettings::default(),
            workers: WorkerSettings::default(),
            queue: QueueSettings::default(),
            storage: StorageSettings::default(),
            uploads: UploadSettings::default(),
            websocket: WebSocketSettings::default(),
            pipeline: Limits::default(),
            variants: VariantSpec::defaults(),
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
        self.redis.check(&mut checks);
        self.workers.check(&mut checks);
        self.queue.check(&mut checks);
        self.storage.check(&mut checks);
        self.uploads.check(&mut checks);
        self.websocket.check(&mut checks);
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
    fn every_invalid_setting_is_named_in_one_error() {
        // Proves one start-up reports each problem, across sections, naming the setting.
        let mut settings = Settings::default();
        settings.queue.heartbeat_ttl_ms = 1000;
        settings.queue.heartbeat_interval_ms = 2000;
        settings.redis.key_prefix = String::new();
        settings.workers.concurrency = 0;
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
