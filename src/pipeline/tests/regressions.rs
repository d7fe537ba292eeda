//! Every input fuzzing ever found a crash with (`fuzz/regressions/image/`, see `scripts/fuzz`)
//! goes through the same steps as in the fuzz target, and must be answered without a panic.

use std::path::Path;

use super::fixtures::{process_with, spec};
use crate::pipeline::{Fit, Limits, Sniffed, sniff};

#[test]
fn every_input_fuzzing_found_is_answered_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/image");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let sniffed = sniff(&bytes);
        if matches!(sniffed, Sniffed::Image(_)) {
            let limits = Limits {
                max_pixels: 4_000_000,
                ..Limits::default()
            };
            let _ = process_with(&bytes, &[spec("t", 64, 64, Fit::Inside)], &limits);
        }
        replayed += 1;
    }
    assert!(replayed > 0, "no regression inputs in {}", dir.display());
}
