//! What a job is, as stored in its Redis hash and as reported to callers: its id, its states, its
//! record, and the error a handler reports.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::subject::Subject;

/// A job id: a UUIDv7, so ids sort by creation time. Parsing rejects anything else, so a
/// client-supplied id can never build an unexpected key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a job id: {0:?}")]
pub struct InvalidJobId(String);

impl FromStr for JobId {
    type Err = InvalidJobId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match Uuid::try_parse(s) {
            Ok(uuid) if uuid.get_version_num() == 7 => Ok(Self(uuid)),
            _ => Err(InvalidJobId(s.chars().take(64).collect())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Active,
    /// Waiting out a backoff before it is queued again.
    Retrying,
    Completed,
    /// Dead: out of attempts, stalled too often, or a permanent error.
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Active => "active",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "active" => Self::Active,
            "retrying" => Self::Retrying,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(format!("unknown job state {other:?}")),
        })
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// In which line a job waits: high-priority jobs are claimed before bulk (normal) ones, except
/// that after every `queue.priority_burst` high-priority starts one waiting bulk job starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Normal,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::High => "high",
        }
    }

    /// How the job's hash stores it: the field `priority` is `high`, or absent.
    fn from_field(field: Option<&str>) -> Self {
        match field {
            Some("high") => Self::High,
            _ => Self::Normal,
        }
    }

    /// What `enqueue.lua` takes: `high`, or empty for a bulk job.
    pub(super) fn as_arg(self) -> &'static str {
        match self {
            Self::Normal => "",
            Self::High => "high",
        }
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Self::Normal),
            "high" => Ok(Self::High),
            other => Err(format!(
                "unknown priority {:?}: use \"high\" or \"normal\"",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// Why a job failed, as shown to clients: a stable kebab-case code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub detail: String,
}

fn num<T: FromStr>(h: &HashMap<String, String>, key: &str) -> Option<T> {
    h.get(key).and_then(|v| v.parse().ok())
}

/// A job's record, read from its hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: JobId,
    /// Who uploaded it: the only caller who may see it.
    #[serde(skip)]
    pub subject: Subject,
    pub state: JobState,
    pub priority: Priority,
    pub attempts: u32,
    pub max_attempts: u32,
    /// Times the job's worker died under it.
    pub stalls: u32,
    pub progress: u8,
    pub step: Option<String>,
    pub error: Option<ErrorInfo>,
    pub payload: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub updated_at: u64,
    /// When a retrying job becomes due.
    pub due_at: Option<u64>,
    /// Counts the job's transitions: a later state has a higher version (see `JobEvent::version`).
    pub version: u64,
}

impl JobRecord {
    /// Builds the record from HGETALL's answer; `None` when the hash is empty (no such job).
    pub(super) fn from_hash(id: JobId, mut h: HashMap<String, String>) -> Option<Self> {
        let state = h.get("state")?.parse().ok()?;
        let error = match (h.remove("error_code"), h.remove("error_detail")) {
            (Some(code), detail) => Some(ErrorInfo {
                code,
                detail: detail.unwrap_or_default(),
            }),
            _ => None,
        };
        let json = |v: Option<String>| v.and_then(|s| serde_json::from_str(&s).ok());
        Some(Self {
            id,
            subject: Subject::from_field(h.remove("subject")),
            state,
            priority: Priority::from_field(h.get("priority").map(String::as_str)),
            attempts: num(&h, "attempts").unwrap_or(0),
            max_attempts: num(&h, "max_attempts").unwrap_or(0),
            stalls: num(&h, "stalls").unwrap_or(0),
            progress: num(&h, "progress").unwrap_or(0),
            created_at: num(&h, "created_at").unwrap_or(0),
            started_at: num(&h, "started_at"),
            finished_at: num(&h, "finished_at"),
            updated_at: num(&h, "updated_at").unwrap_or(0),
            due_at: num(&h, "due_at"),
            version: num(&h, "version").unwrap_or(0),
            step: h.remove("step"),
            error,
            payload: json(h.remove("payload")).unwrap_or(serde_json::Value::Null),
            result: json(h.remove("result")),
        })
    }
}

impl JobRecord {
    /// The record as an event of its latest transition would report it.
    pub fn event(&self) -> JobEvent {
        JobEvent {
            id: self.id,
            state: self.state,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            progress: self.progress,
            step: self.step.clone(),
            error: self.error.clone(),
            result: self.result.clone(),
            due_at: self.due_at,
            version: self.version,
            updated_at: self.updated_at,
        }
    }
}

/// The event every transition publishes (see `lua/prelude.lua`), as a subscriber decodes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub id: JobId,
    pub state: JobState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub progress: u8,
    pub step: Option<String>,
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<u64>,
    /// The record's version after this transition: an event whose version is not above that of a
    /// record read earlier is already reflected in it.
    #[serde(default)]
    pub version: u64,
    pub updated_at: u64,
}

/// What is published when a job is removed for good (see `remove_job` in `lua/prelude.lua`):
/// `{"id": ..., "deleted": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct JobDeleted {
    pub id: JobId,
    pub deleted: bool,
}

/// How a handler's failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Retrying cannot help (a corrupt image): fail at once.
    Permanent,
    /// May pass on a later attempt (I/O, timeout): retry with backoff while attempts remain.
    Transient,
}

/// A code a job's failure may carry, and whether a job failing with it runs again (while it has
/// attempts left). Each side lists the codes it records: the queue's own in
/// [`QUEUE_ERROR_CODES`], a handler's beside it (the image job's: `image_job::ERROR_CODES`). The
/// README's table of codes is checked against those lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: &'static str,
    pub retried: bool,
}

impl ErrorCode {
    /// A code whose job runs again while it has attempts left.
    pub const fn retried(code: &'static str) -> Self {
        Self {
            code,
            retried: true,
        }
    }

    /// A code that fails its job at once.
    pub const fn not_retried(code: &'static str) -> Self {
        Self {
            code,
            retried: false,
        }
    }
}

/// The codes the queue records whatever the handler: a handler that ran too long or panicked,
/// and a job whose workers kept dying (`lua/recover.lua`).
pub const QUEUE_ERROR_CODES: &[ErrorCode] = &[
    ErrorCode::retried("timeout"),
    ErrorCode::retried("handler-panicked"),
    ErrorCode::not_retried("stalled"),
];

/// A handler's failure: its kind, a stable code and a reason in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct JobError {
    pub kind: ErrorKind,
    pub code: String,
    pub detail: String,
}

impl JobError {
    pub fn permanent(code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn transient(code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            code: code.into(),
            detail: detail.into(),
        }
    }
}
