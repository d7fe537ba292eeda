//! pixdrop: photos in, web-ready WebP variants out.
//!
//! # Layout
//! - [`config`]: typed settings from `config.toml` and `PIXDROP__SECTION__KEY` variables.
//! - [`queue`]: the reliable job queue on Redis lists: enqueue, claim, ack/retry/fail, recovery of
//!   crashed workers' jobs, the worker pool. It knows nothing about images.
//! - [`pipeline`]: pure, synchronous image work: sniff, decode with limits, orient, resize, encode
//!   WebP, write atomically. No tokio, no Redis.
//! - [`redis_connect`]: which Redis to use: the configured URL, or the embedded server.
//! - [`redis_server`]: a `redis-server` child process pixdrop owns (the embedded default, and
//!   every test's private Redis).

pub mod config;
pub mod pipeline;
pub mod queue;
pub mod redis_connect;
pub mod redis_server;
