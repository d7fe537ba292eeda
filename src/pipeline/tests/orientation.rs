//! EXIF orientation: for each of the eight values, the variant comes out the size and way round
//! the camera meant, judged by where a marked corner of a wider-than-tall JPEG ends up.

use image::{DynamicImage, GenericImageView};

use super::fixtures::{
    exif_orientation_segment, jpeg, marked_corner, near, process_bytes, process_with, read_webp,
    spec, splice_after_soi,
};
use crate::pipeline::{Fit, Limits, PipelineError, SizeLimit};

const RED: [u8; 3] = [230, 20, 20];
const WHITE: [u8; 3] = [255, 255, 255];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

/// The one corner whose 8-pixel inset is red.
fn red_corner(image: &DynamicImage) -> Corner {
    let (w, h) = image.dimensions();
    let corners = [
        (Corner::TopLeft, 8, 8),
        (Corner::TopRight, w - 9, 8),
        (Corner::BottomLeft, 8, h - 9),
        (Corner::BottomRight, w - 9, h - 9),
    ];
    let red: Vec<Corner> = corners
        .into_iter()
        .filter(|&(_, x, y)| near(&image.get_pixel(x, y).0[..3], &RED, 40))
        .map(|(corner, _, _)| corner)
        .collect();
    assert_eq!(
        red.len(),
        1,
        "expected exactly one red corner, found {red:?}"
    );
    red[0]
}

/// A 64x32 JPEG, red 16x16 block at the top left, carrying EXIF Orientation `orientation`.
fn oriented_jpeg(orientation: u16, big_endian: bool) -> Vec<u8> {
    let plain = jpeg(&marked_corner(64, 32, 16, RED, WHITE));
    splice_after_soi(&plain, &exif_orientation_segment(orientation, big_endian))
}

/// Where the top-left corner of the stored image is shown, per EXIF orientation 1 to 8, and
/// whether the sides swap: the dihedral group in the order the EXIF specification lists it.
const EXPECTED: [(u16, Corner, bool); 8] = [
    (1, Corner::TopLeft, false),
    (2, Corner::TopRight, false),    // mirrored left-right
    (3, Corner::BottomRight, false), // turned 180 degrees
    (4, Corner::BottomLeft, false),  // mirrored top-bottom
    (5, Corner::TopLeft, true),      // transposed
    (6, Corner::TopRight, true),     // turned 90 degrees clockwise
    (7, Corner::BottomRight, true),  // transversed
    (8, Corner::BottomLeft, true),   // turned 90 degrees anticlockwise
];

#[test]
fn every_exif_orientation_from_1_to_8_is_applied_to_size_and_content() {
    // Proves output dimensions AND the marked corner's position for all eight orientations.
    for (orientation, corner, swapped) in EXPECTED {
        let bytes = oriented_jpeg(orientation, true);
        let specs = [
            spec("full", 1000, 1000, Fit::Inside),
            spec("small", 16, 16, Fit::Inside),
        ];
        let (received, processed) = process_bytes(&bytes, &specs);
        let (w, h) = if swapped { (32, 64) } else { (64, 32) };
        assert_eq!(
            (processed.original.width, processed.original.height),
            (w, h),
            "orientation {orientation}"
        );
        let full = &processed.variants[0];
        assert_eq!(
            (full.width, full.height),
            (w, h),
            "orientation {orientation}"
        );
        let small = &processed.variants[1];
        assert_eq!(
            (small.width, small.height),
            (w / 4, h / 4),
            "orientation {orientation}"
        );
        let shown = read_webp(&received, &full.name);
        assert_eq!(shown.dimensions(), (w, h));
        assert_eq!(red_corner(&shown), corner, "orientation {orientation}");
    }
}

#[test]
fn little_endian_exif_is_read_as_well_as_big_endian() {
    // Proves both TIFF byte orders cameras use are understood.
    for (orientation, corner, swapped) in [EXPECTED[5], EXPECTED[2]] {
        let (received, processed) = process_bytes(
            &oriented_jpeg(orientation, false),
            &[spec("full", 1000, 1000, Fit::Inside)],
        );
        let shown = read_webp(&received, &processed.variants[0].name);
        assert_eq!(shown.dimensions().0 < shown.dimensions().1, swapped);
        assert_eq!(red_corner(&shown), corner, "orientation {orientation}");
    }
}

#[test]
fn an_out_of_range_orientation_is_ignored_rather_than_refused() {
    // Proves a bogus EXIF value (9) leaves the photo as stored instead of failing the upload.
    let (received, processed) = process_bytes(
        &oriented_jpeg(9, true),
        &[spec("full", 1000, 1000, Fit::Inside)],
    );
    let shown = read_webp(&received, &processed.variants[0].name);
    assert_eq!(shown.dimensions(), (64, 32));
    assert_eq!(red_corner(&shown), Corner::TopLeft);
}

#[test]
fn size_limits_apply_to_the_image_as_displayed() {
    // Proves a rotated photo is measured the way it will be shown: 64x32 stored is 32x64 shown.
    let limits = Limits {
        max_pixels: 1_000_000,
        max_width: 40,
        max_height: 64,
        ..Limits::default()
    };
    let ok = process_with(&oriented_jpeg(6, true), &[], &limits)
        .0
        .unwrap();
    assert_eq!((ok.original.width, ok.original.height), (32, 64));

    let err = process_with(&oriented_jpeg(1, true), &[], &limits)
        .0
        .unwrap_err();
    assert!(matches!(
        err,
        PipelineError::TooLarge {
            width: 64,
            height: 32,
            limit: SizeLimit::Width { max: 40 }
        }
    ));
}

#[test]
fn a_jpeg_decoded_at_a_quarter_keeps_its_size_orientation_and_corner() {
    // Proves shrink-on-load end to end: a variant an eighth of the photo's size is made from a
    // decode at 1/4 (leaving 2x for the resize), yet the original reports its full displayed size,
    // the EXIF turn is applied, the marked corner lands where it should, and the memory estimate
    // is that of the smaller decode.
    let plain = jpeg(&marked_corner(640, 320, 160, RED, WHITE));
    let bytes = splice_after_soi(&plain, &exif_orientation_segment(6, true));
    let specs = [spec("small", 80, 80, Fit::Inside)];
    let (received, processed) = process_bytes(&bytes, &specs);
    assert_eq!(
        (processed.original.width, processed.original.height),
        (320, 640)
    );
    let small = &processed.variants[0];
    assert_eq!((small.width, small.height), (40, 80));
    let shown = read_webp(&received, &small.name);
    assert_eq!(shown.dimensions(), (40, 80));
    assert_eq!(red_corner(&shown), Corner::TopRight);
    let limits = Limits::default();
    let full = crate::pipeline::probe(std::io::Cursor::new(&bytes), &limits, &[]).unwrap();
    let scaled = crate::pipeline::probe(std::io::Cursor::new(&bytes), &limits, &specs).unwrap();
    let (full_pixels, quarter_pixels) = (640 * 320 * 3, 160 * 80 * 3);
    assert_eq!(
        full.memory_bytes - scaled.memory_bytes + 40 * 80 * 4 * 3,
        full_pixels * 2 - quarter_pixels * 2,
        "the decode and its turned copy are counted at a quarter of the size"
    );
}
