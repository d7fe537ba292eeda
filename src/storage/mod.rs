//! Every byte pixdrop keeps on disk, and the only code that touches its paths.
//!
//! Stored things are named by a [`StorageKey`], never by a path: originals by their SHA-256
//! (`originals/ab/abcd….jpg`), variants by job id and variant name (`variants/{job id}/{name}.webp`),
//! so a key names one content forever and nothing a client sends becomes part of a path.
//!
//! An upload is *staged* ([`StagedUpload`]: a temp file, hashed and counted as it is written, removed
//! unless committed), then *committed* ([`Storage::commit`]: renamed to its key, the directory
//! synced). Workers read originals through [`Storage::open_original`] and write variants through a
//! [`VariantWriter`], the pipeline's sink, which puts each file in place atomically.
//!
//! Variants made once are kept by content and settings (`made.rs`) and hard-linked into later
//! jobs of the same bytes, which then skip the pipeline.
//!
//! Removal follows Redis (`removal.rs`): a job's outputs go when its record went; an original,
//! shared by every upload of the same bytes, is set aside and then removed or put back as the
//! content's reference count says.
//!
//! The interface speaks only of keys, readers and bytes, so another backend (an object store)
//! could stand behind the same methods; [`Storage::media_file`] is the one local-disk affordance,
//! for serving files with `sendfile` and Range support.

mod disk;
mod key;
mod made;
mod removal;
mod staging;
mod variants;

pub use disk::{Storage, StorageSettings};
pub use key::StorageKey;
pub use removal::{SetAside, Stored};
pub use staging::{CommittedOriginal, StagedUpload};
pub use variants::VariantWriter;
