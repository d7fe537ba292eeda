//! The job queue, built on Redis lists and nothing else of pixdrop: it knows nothing about images.
//! A job is a JSON payload; workers run a `Handler` on it. Every state change is one Lua script.
//!
//! A job's life: `enqueue` writes its hash and pushes its id on `waiting`. A worker moves the id with
//! BLMOVE into its own processing list, then `activate` marks it `active`, counts the attempt and
//! hands out a lease. The worker ends it with `ack` (`completed`), `retry` (`retrying`, due time in
//! a sorted set the scheduler promotes from) or `fail` (`failed`), each fenced by the lease. Each
//! instance keeps a heartbeat; the reaper returns the jobs of instances whose heartbeat expired.
//! Every transition publishes one event.
//!
//! Each job belongs to a [`Subject`], kept in its record and in that subject's index of uploads
//! (newest first, for listing); cancel, resubmit and delete check it inside their scripts.
//!
//! A job is removed for good by its owner, by an administrator's purge of its content, or when
//! its finished record's retention is over (`removal.rs`); the content it reads is counted by
//! reference, and what storage holds for removed jobs and unreferenced contents is scheduled for a
//! sweep that removes files after the records (`content.rs`).
//!
//! Chores on behalf of the whole queue repeat on a schedule kept in Redis, each occurrence taken by
//! one instance (`repeat.rs`).

mod backoff;
mod client;
mod clock;
mod content;
mod control;
mod job;
mod keys;
mod listing;
mod maintenance;
mod pool;
mod progress;
mod reachability;
mod reaper;
mod reconnect;
mod removal;
mod repeat;
mod scripts;
mod server_check;
mod settings;
mod subject;
mod worker_conn;

pub use backoff::Backoff;
pub use client::{
    BlockedContent, CancelOutcome, Depths, NewJob, Queue, QueueError, QueueResult, ResubmitOutcome,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use content::{ClaimedGarbage, Garbage, Pin, StoredJob};
pub use control::{
    Counts, FINISHED_STATES, FinishedPage, Instance, QueueStats, RETRY_ALL_MAX, WorkerSlot,
};
pub use job::{
    ErrorCode, ErrorInfo, ErrorKind, InvalidJobId, JobDeleted, JobError, JobEvent, JobId,
    JobRecord, JobState, Priority, QUEUE_ERROR_CODES,
};
pub use keys::{KeyPrefix, Keys};
pub use listing::JobPage;
pub use pool::{Handler, WorkerPool};
pub use progress::Progress;
pub use reaper::Recovered;
pub(crate) use reconnect::ReconnectDelay;
pub use removal::{DeleteProof, Removed};
pub use repeat::RepeatingTask;
pub use server_check::{ServerCheckError, ServerReport};
pub use settings::{QueueSettings, WorkerSettings};
pub use subject::{InvalidSubject, Subject};
pub use worker_conn::{Claim, Claimed, Settled, WorkerConn};
