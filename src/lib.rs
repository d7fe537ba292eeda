//! pixdrop: photos in, web-ready WebP variants out.

pub mod pipeline;
