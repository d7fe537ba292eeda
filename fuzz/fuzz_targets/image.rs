//! Any bytes through what a worker does with an upload: see `pixdrop::fuzzing::image`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    pixdrop::fuzzing::image(bytes);
});
