//! pixdrop: photos in, web-ready WebP variants out.
//!
//! A photo's way through: [`http`] streams the upload to [`storage`], sniffs it and enqueues a job;
//! a worker of the [`queue`]'s pool runs [`worker::ImageHandler`], which runs the [`pipeline`] and
//! writes the variants to storage; every state change is published as an event, which [`events`]
//! relays to the browsers watching over a websocket.
//!
//! # Layout
//! - [`app`]: wires everything: build, port, run until stopped. HTTP, workers, or both.
//! - [`http`]: the API: upload, job status/cancel/retry, media, health, the live websocket and the
//!   page; errors as problem+json.
//! - [`events`]: the one Redis SUBSCRIBE of a process, fanned out to its websockets.
//! - [`worker`]: the image job a worker runs.
//! - [`storage`]: generated paths for originals and variants under `storage.dir`.
//! - [`config`]: typed settings from `config.toml` and `PIXDROP__SECTION__KEY` variables.
//! - [`queue`]: the reliable job queue on Redis lists: enqueue, claim, ack/retry/fail, recovery of
//!   crashed workers' jobs, the worker pool. It knows nothing about images.
//! - [`pipeline`]: pure, synchronous image work: sniff, decode with limits, orient, resize, encode
//!   WebP, write atomically. No tokio, no Redis.
//! - [`redis_connect`]: which Redis to use: the configured URL, or the embedded server.
//! - [`redis_server`]: a `redis-server` child process pixdrop owns (the embedded default, and
//!   every test's private Redis).

pub mod app;
pub mod config;
pub mod events;
pub mod http;
pub mod pipeline;
pub mod queue;
pub mod redis_connect;
pub mod redis_server;
pub mod storage;
pub mod worker;
