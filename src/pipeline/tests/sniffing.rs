//! Sniffing: real files of every accepted format are recognised, everything else is named, and
//! nothing past the first `SNIFF_LEN` bytes matters.

use image::{DynamicImage, RgbImage};

use super::fixtures::{encode, pseudo_random_bytes};
use crate::pipeline::{ImageFormat, SNIFF_LEN, Sniffed, sniff};

fn other(mime: &'static str) -> Sniffed {
    Sniffed::Other { mime }
}

#[test]
fn sniffing_recognises_every_accepted_format_from_real_encoder_output() {
    // Proves the magic numbers match what encoders actually write, not just what we remember.
    let image = DynamicImage::ImageRgb8(RgbImage::new(4, 3));
    for expected in ImageFormat::ALL {
        let encoder = expected.to_image_crate();
        let bytes = encode(&image, encoder);
        assert_eq!(sniff(&bytes), Sniffed::Image(expected), "{encoder:?}");
        assert_eq!(sniff(&bytes).mime(), expected.mime());
    }
}

#[test]
fn sniffing_recognises_lossy_webp_and_both_tiff_byte_orders() {
    // Proves the variants of a format that the encoders above do not produce.
    let config = crate::pipeline::libwebp::config(50.0, 4).unwrap();
    let go = std::sync::atomic::AtomicBool::new(false);
    let lossy =
        crate::pipeline::libwebp::encode_still(&[200; 12], false, 2, 2, &config, &go).unwrap();
    assert_eq!(sniff(&lossy), Sniffed::Image(ImageFormat::WebP));
    assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Sniffed::Image(ImageFormat::Tiff));
    assert_eq!(sniff(b"II*\0\x08\0\0\0"), Sniffed::Image(ImageFormat::Tiff));
}

#[test]
fn sniffing_names_documents_archives_and_other_media() {
    // Proves the common wrong uploads are named, so the error can say what was sent.
    assert_eq!(
        sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3"),
        other("application/pdf")
    );
    assert_eq!(
        sniff(b"PK\x03\x04\x14\0\0\0\x08\0"),
        other("application/zip")
    );
    assert_eq!(sniff(b"\x1f\x8b\x08\0\0\0\0\0"), other("application/gzip"));
    assert_eq!(sniff(b"8BPS\0\x01"), other("image/vnd.adobe.photoshop"));
    assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), other("audio/wav"));
}

#[test]
fn sniffing_names_heic_avif_and_video_by_their_ftyp_brands() {
    // Proves phone photos we refuse are named precisely, including via compatible brands.
    assert_eq!(
        sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"),
        other("image/heic")
    );
    assert_eq!(
        sniff(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf"),
        other("image/avif")
    );
    assert_eq!(
        sniff(b"\0\0\0\x18ftypmif1\0\0\0\0mif1avif"),
        other("image/avif")
    );
    assert_eq!(
        sniff(b"\0\0\0\x14ftypmif1\0\0\0\0mif1"),
        other("image/heif")
    );
    assert_eq!(
        sniff(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2"),
        other("video/mp4")
    );
    assert_eq!(
        sniff(b"\0\0\0\x14ftypqt  \0\0\0\0qt  "),
        other("video/quicktime")
    );
}

#[test]
fn sniffing_names_markup_and_plain_text_as_text() {
    // Proves text is told apart from binary, and HTML, SVG and XML from plain prose.
    assert_eq!(sniff(b"<!DOCTYPE html><html><head>"), other("text/html"));
    assert_eq!(sniff(b"\n  <html lang=\"en\">"), other("text/html"));
    assert_eq!(
        sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\""),
        other("image/svg+xml")
    );
    assert_eq!(
        sniff(b"\xef\xbb\xbf<?xml version=\"1.0\"?><svg"),
        other("text/xml")
    );
    assert_eq!(sniff(b"hello, this is a note\r\n"), other("text/plain"));
    // A multi-byte character cut off at the sniff window is still text.
    assert_eq!(
        sniff("caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e, s'il vous pla\u{ee}t".as_bytes()),
        other("text/plain")
    );
}

#[test]
fn sniffing_random_bytes_and_empty_files_gives_no_format() {
    // Proves unknown binary falls back to octet-stream and an empty file is called empty.
    for seed in 1..20 {
        let bytes = pseudo_random_bytes(64, seed);
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            continue; // Astronomically unlikely, but noise may spell a magic number.
        }
        assert_eq!(
            sniff(&bytes),
            other("application/octet-stream"),
            "seed {seed}"
        );
    }
    assert_eq!(sniff(b""), other("inode/x-empty"));
}

#[test]
fn text_starting_with_bm_is_not_mistaken_for_a_bitmap() {
    // Proves the BMP check needs more than its two-letter signature.
    assert_eq!(
        sniff(b"BMW owners club newsletter, issue 4"),
        other("text/plain")
    );
    assert_eq!(sniff(b"BM"), other("text/plain"));
}

#[test]
fn sniffing_ignores_everything_after_the_first_sniff_len_bytes() {
    // Proves callers may pass a whole file, and that a short prefix is all that is needed.
    let mut text = vec![b'a'; SNIFF_LEN];
    text.extend(pseudo_random_bytes(100, 3));
    assert_eq!(sniff(&text), other("text/plain"));
    let png = encode(
        &DynamicImage::ImageRgb8(RgbImage::new(2, 2)),
        image::ImageFormat::Png,
    );
    assert_eq!(sniff(&png[..SNIFF_LEN]), sniff(&png));
}

#[test]
fn a_short_or_lying_ftyp_box_is_named_without_a_panic() {
    // Proves the 10-byte `00 00 00 08 ftypab` upload, and every cut of a real HEIC header with any
    // claimed box length, is answered rather than crashing the handler.
    assert_eq!(
        sniff(b"\0\0\0\x08ftypab"),
        other("application/octet-stream")
    );
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    for cut in 0..=heic.len() {
        for claimed in [0u32, 1, 8, 11, 12, 15, 16, 17, 24, 1 << 31, u32::MAX] {
            let mut bytes = heic[..cut].to_vec();
            if bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&claimed.to_be_bytes());
            }
            let _ = sniff(&bytes);
        }
    }
    assert_eq!(sniff(heic), other("image/heic"));
}

#[test]
fn sniffing_never_panics_on_short_inputs_around_every_signature() {
    // Proves every prefix of every signature we look for, padded with each byte value, is
    // sniffed: the header checks index only what they have.
    let signatures: [&[u8]; 8] = [
        b"\0\0\0\x0cftypavif",
        b"RIFF\0\0\0\0WEBPVP8 ",
        b"BM\0\0\0\0\0\0\0\0\0\0\0\0\x28\0\0\0",
        b"\xef\xbb\xbf<svg",
        b"\x89PNG\r\n\x1a\n",
        b"II*\0",
        b"\xff\xd8\xff",
        b"\0\0\0\x0cJXL \r\n\x87\n",
    ];
    for signature in signatures {
        for cut in 0..=signature.len() {
            for pad in [0u8, 0x80, 0xff, b'a'] {
                let mut bytes = signature[..cut].to_vec();
                bytes.resize(cut + 3, pad);
                let _ = sniff(&bytes[..cut]);
                let _ = sniff(&bytes);
            }
        }
    }
}
