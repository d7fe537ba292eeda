//! Integration tests of the HTTP API: the real app on port 0, with a redis-server of its own.

#[path = "../support/mod.rs"]
mod support;

mod helpers;
mod raw;
mod socket;

mod admin;
mod auth;
mod colour;
mod deletion;
mod errors;
mod hostile;
mod jobs;
mod jwt;
mod media;
mod metrics;
mod origins;
mod page;
mod quotas;
mod upload;
mod ws;
