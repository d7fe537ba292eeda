//! The image job: what an upload asks of a worker, what the worker answers, and the handler that
//! does the work.
//!
//! [`ImageJob`] (the payload `http` enqueues) and [`ImageResult`] (what the handler acks) are the
//! contract between the two sides, stored in the queue's records as JSON. The result names every
//! file by its [`StorageKey`](crate::storage::StorageKey); only `http` turns keys into URLs.

mod contract;
mod handler;

pub use contract::{DecodedOriginal, ImageJob, ImageResult, StoredVariant};
pub use handler::{ERROR_CODES, ImageHandler};
