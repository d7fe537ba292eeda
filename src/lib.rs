//! pixdrop: photos in, web-ready WebP variants out.
