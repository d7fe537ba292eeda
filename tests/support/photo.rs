//! A photo-like JPEG made in memory, for tests and the soak that need real pixels to decode,
//! resize and encode: smooth gradients under fine noise, so it is neither trivial to compress
//! nor to resize. Included by path (`#[path]`) where it is needed.

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};

/// A `width` x `height` JPEG at quality 85; the same bytes every time.
pub fn noisy_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let image = RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed & 15) as u32;
        Rgb([
            ((x * 255 / width + noise) % 256) as u8,
            ((y * 255 / height + noise) % 256) as u8,
            (((x + y) / 20 + noise) % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&image)
        .unwrap();
    out
}
