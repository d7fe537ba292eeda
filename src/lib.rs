//! pixdrop: photos in, web-ready WebP variants out.
//!
//! A photo's way through: [`http`] streams the upload into [`storage`] (staged, hashed, sniffed,
//! then committed under its content's key) and enqueues an [`image_job::ImageJob`]; a worker of the
//! [`queue`]'s pool runs [`image_job::ImageHandler`], which reads the original from storage, runs
//! the [`pipeline`] and hands each variant to storage, answering with an
//! [`image_job::ImageResult`] of storage keys; every state change is published as an event, which
//! [`events`] relays to the browsers watching over a websocket, each job shown as one
//! [`http::view::JobView`].
//!
//! # Layout
//! - [`app`]: wires everything: build, port, run until stopped. HTTP, workers, or both.
//! - [`http`]: the API: upload, job status/cancel/retry, media, health, the live websocket and the
//!   page; errors as problem+json.
//! - [`events`]: the one Redis SUBSCRIBE of a process, fanned out to its websockets.
//! - [`image_job`]: the job contract (payload and result) and the handler a worker runs.
//! - [`storage`]: every byte on disk: staging and committing uploads, writing variants atomically,
//!   reading originals, serving, setting aside and removing, all addressed by storage keys.
//! - [`cleanup`]: removal for good: deletions, purges and expiry, the sweep that removes files
//!   once Redis no longer references them, and the orphan sweep.
//! - [`auth`]: who is calling: API tokens or an identity provider's JWTs, proven into the
//!   subject that owns the jobs it uploads.
//! - [`config`]: settings from `config.toml` and `PIXDROP__SECTION__KEY` variables, composed of
//!   the sections each module owns, checked once at load ([`validate`]).
//! - [`queue`]: the reliable job queue on Redis lists: enqueue, claim, ack/retry/fail, recovery of
//!   crashed workers' jobs, the worker pool. It knows nothing about images.
//! - [`pipeline`]: pure, synchronous image work: sniff, decode with limits, convert colours to
//!   sRGB, orient, resize, encode WebP, write atomically. No tokio, no Redis.
//! - [`redis_connect`]: which Redis to use: the configured URL, or the embedded server.
//! - [`embedded_redis`]: one embedded server per storage directory, locked, started by the first
//!   command and joined by the others, kept running while any of them lives.
//! - [`redis_server`]: a `redis-server` child process pixdrop starts (the embedded server, and
//!   every test's private Redis).
//! - [`signals`]: Ctrl-C and SIGTERM for the binary: a graceful stop, then an immediate one.
//! - [`fuzzing`]: the entries `cargo fuzz` drives (image path, upload body), replayed by the tests.

pub mod app;
pub mod auth;
pub mod cleanup;
pub mod config;
pub mod embedded_redis;
pub mod events;
pub mod fuzzing;
pub mod http;
pub mod image_job;
pub mod logging;
pub mod pipeline;
pub mod queue;
#[cfg(test)]
mod readme_check;
pub mod redis_connect;
pub mod redis_server;
pub mod signals;
pub mod storage;
pub mod telemetry;
pub mod validate;
