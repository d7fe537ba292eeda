//! A run's allowance: the memory estimate read from the header, a grant too small refused before
//! any pixel is allocated, and a stop raised between steps honoured at the next one.

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, Rgba};

use super::alloc_probe::largest_allocation_during;
use super::fixtures::{Received, encode, jpeg, noise, spec};
use crate::pipeline::{
    Control, Fit, Limits, PipelineError, SizeLimit, Step, StopFlag, VariantSpec, probe, process,
};

fn png16(width: u32, height: u32) -> Vec<u8> {
    let image = ImageBuffer::<Rgba<u16>, _>::from_pixel(width, height, Rgba([9000, 1, 2, 65535]));
    encode(&DynamicImage::ImageRgba16(image), image::ImageFormat::Png)
}

#[test]
fn the_memory_estimate_counts_sixteen_bit_pixels_and_their_eight_bit_copy() {
    // 300x200 RGBA at 16 bits is 480,000 bytes decoded, plus 240,000 for the 8-bit copy.
    let bytes = png16(300, 200);
    let found = probe(Cursor::new(&bytes), &Limits::default(), &[]).unwrap();
    assert_eq!((found.width, found.height), (300, 200));
    let pixels = 300 * 200;
    assert_eq!(
        found.memory_bytes,
        pixels * 8 + pixels * 4 + bytes.len() as u64
    );
    // A variant's buffers are part of the estimate, at the size it will have (the image's own,
    // as a variant is never enlarged): its pixels, and twice that inside the encoder.
    let with_large = probe(
        Cursor::new(&bytes),
        &Limits::default(),
        &[VariantSpec::large()],
    )
    .unwrap();
    assert_eq!(with_large.memory_bytes, found.memory_bytes + pixels * 4 * 3);
}

#[test]
fn a_grant_smaller_than_the_estimate_is_refused_before_the_pixels_are_allocated() {
    let bytes = png16(1000, 1000);
    let needed = probe(Cursor::new(&bytes), &Limits::default(), &[])
        .unwrap()
        .memory_bytes;
    let control = Control {
        memory_bytes: needed - 1,
        ..Control::unlimited()
    };
    let mut received = Received::new();
    let (result, largest) = largest_allocation_during(|| {
        process(
            Cursor::new(&bytes),
            &[],
            &Limits::default(),
            &control,
            &mut received,
            &mut |_| {},
        )
    });
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            PipelineError::TooLarge {
                limit: SizeLimit::Memory,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(largest < 1 << 20, "allocated {largest} bytes in one go");
    let control = Control {
        memory_bytes: needed,
        ..Control::unlimited()
    };
    let limits = Limits::default();
    process(
        Cursor::new(&bytes),
        &[],
        &limits,
        &control,
        &mut received,
        &mut |_| {},
    )
    .unwrap();
}

#[test]
fn a_stop_raised_during_a_step_ends_the_run_before_the_next() {
    // Raised once decoded: nothing is rendered. Raised after the first variant is handed over:
    // the second is not, and the run says it was stopped.
    let bytes = jpeg(&noise(64, 48));
    let specs = [
        spec("one", 32, 32, Fit::Inside),
        spec("two", 16, 16, Fit::Inside),
    ];
    for (stop_after, handed_over) in [(0, 0), (1, 1)] {
        let control = Control::unlimited();
        let mut received = Received::new();
        let mut steps = 0;
        let err = process(
            Cursor::new(&bytes),
            &specs,
            &Limits::default(),
            &control,
            &mut received,
            &mut |step| {
                if matches!(step, Step::Decoded { .. }) || steps > 0 {
                    steps += 1;
                }
                if steps > stop_after {
                    control.stop.stop();
                }
            },
        )
        .unwrap_err();
        assert!(matches!(err, PipelineError::Stopped), "{err:?}");
        assert_eq!(err.code(), "stopped");
        assert!(!err.is_permanent());
        assert_eq!(
            received.len(),
            handed_over,
            "stopped after {stop_after} steps"
        );
    }
    let stopped = StopFlag::new();
    stopped.stop();
    let control = Control {
        stop: stopped,
        ..Control::unlimited()
    };
    let err = process(
        Cursor::new(&bytes),
        &specs,
        &Limits::default(),
        &control,
        &mut Received::new(),
        &mut |_| panic!("no step once stopped"),
    )
    .unwrap_err();
    assert!(matches!(err, PipelineError::Stopped));
}
