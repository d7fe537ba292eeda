//! End-to-end tests of the pipeline on small images the tests make in memory and temp dirs.
//! Tests of one part alone live beside that part.

mod alloc_probe;
mod animation;
mod colour;
mod control;
mod failures;
pub(crate) mod fixtures;
mod inputs;
mod orientation;
mod outputs;
mod sniffing;
