//! Any bytes as the body of an upload: see `pixdrop::fuzzing::upload_body`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = pixdrop::fuzzing::upload_body(bytes);
});
