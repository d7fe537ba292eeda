//! How a setting is refused. Each module that owns settings checks its own, once, when they are
//! loaded (see `config`); every problem found is collected, so one start-up names them all, and
//! each names its setting as written in `config.toml`: `queue.heartbeat_ttl_ms (1000) must be
//! greater than queue.heartbeat_interval_ms (2000)`. Code past that check trusts the values as
//! they are: nothing downstream clamps or second-guesses them.

use std::fmt;

/// One setting that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// `section.key`, as in `config.toml`.
    pub setting: String,
    /// The whole sentence, naming the setting and its value.
    pub message: String,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The problems found so far.
#[derive(Debug, Default)]
pub struct Checks {
    found: Vec<InvalidSetting>,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `message` against `setting` unless `ok`.
    pub fn require(&mut self, ok: bool, setting: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.refuse(setting, message());
        }
    }

    /// Records `setting` as invalid, for `message`.
    pub fn refuse(&mut self, setting: &str, message: String) {
        self.found.push(InvalidSetting {
            setting: setting.to_owned(),
            message,
        });
    }

    /// `setting (value) must be at least min`, unless it is.
    pub fn at_least<T: PartialOrd + fmt::Display>(&mut self, setting: &str, value: T, min: T) {
        self.require(value >= min, setting, || {
            format!("{setting} ({value}) must be at least {min}")
        });
    }

    /// `Ok` when nothing was refused, else every problem in the order found.
    pub fn finish(self) -> Result<(), Vec<InvalidSetting>> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(self.found)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refused_setting_is_kept_in_order_with_its_own_sentence() {
        // Proves one check run reports all problems, not just the first.
        let mut checks = Checks::new();
        checks.at_least("a.b", 0, 1);
        checks.require(true, "a.c", || unreachable!("only built when refused"));
        checks.require(false, "a.d", || "a.d is wrong".into());
        let found = checks.finish().unwrap_err();
        let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(messages, ["a.b (0) must be at least 1", "a.d is wrong"]);
        assert_eq!(found[1].setting, "a.d");
        assert!(Checks::new().finish().is_ok());
    }
}
