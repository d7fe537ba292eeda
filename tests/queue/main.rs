//! Integration tests of the queue, each against a real `redis-server` of its own.

#[path = "../support/mod.rs"]
mod support;

mod control;
mod crash;
mod load;
mod priority;
mod recovery;
mod redis_restart;
mod retries;
mod shutdown;
mod transitions;
mod windows;
