//! Any bytes through what a worker does with an upload: sniff, then decode, orient, resize and
//! encode with small limits so each run is quick. Refusals are fine; a panic, a hang or memory
//! beyond the limits is a bug. Crashes found go to `fuzz/regressions/image/`, which the normal
//! test suite replays (`src/pipeline/tests/regressions.rs`).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use pixdrop::pipeline::{Control, Fit, Limits, Sniffed, VariantSpec, process, sniff};

fuzz_target!(|bytes: &[u8]| {
    if !matches!(sniff(bytes), Sniffed::Image(_)) {
        return;
    }
    let limits = Limits {
        max_pixels: 4_000_000,
        ..Limits::default()
    };
    let specs = [VariantSpec::new("t", 64, 64, Fit::Inside, 50.0).unwrap()];
    let mut received: Vec<(String, Vec<u8>)> = Vec::new();
    let _ = process(
        Cursor::new(bytes),
        &specs,
        &limits,
        &Control::unlimited(),
        &mut received,
        &mut |_| {},
    );
});
