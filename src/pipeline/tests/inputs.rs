//! The kinds of image people upload: every accepted format, transparency, deep colour, animation,
//! and the smallest possible image.

use image::codecs::gif::GifEncoder;
use image::{
    ColorType, DynamicImage, Frame, GenericImageView, GrayImage, ImageBuffer, Luma, Rgb, Rgba,
    RgbaImage,
};

use super::fixtures::{encode, near, process_bytes, process_with, read_webp, spec};
use crate::pipeline::{Fit, ImageFormat, Limits, VariantSpec};

/// Animations of more than one frame are cut to their first.
const ONE_FRAME: Limits = Limits {
    max_pixels: 50_000_000,
    max_width: 20_000,
    max_height: 20_000,
    memory_budget_bytes: 1 << 30,
    max_frames: 1,
    max_animation_pixels: 100_000_000,
};

#[test]
fn every_accepted_format_is_decoded_and_made_into_webp() {
    // Proves the whole path works for JPEG, PNG, GIF, WebP, BMP and TIFF, with the format named.
    let image = DynamicImage::ImageRgb8(ImageBuffer::from_fn(40, 30, |x, _| {
        Rgb([(x * 6) as u8, 90, 160])
    }));
    for format in ImageFormat::ALL {
        let encoder = format.to_image_crate();
        let (received, processed) = process_bytes(
            &encode(&image, encoder),
            &[spec("half", 20, 20, Fit::Inside)],
        );
        assert_eq!(processed.original.format, format);
        assert_eq!(
            (processed.original.width, processed.original.height),
            (40, 30)
        );
        let out = read_webp(&received, &processed.variants[0].name);
        assert_eq!(out.dimensions(), (20, 15), "{format}");
        assert!(
            near(&out.get_pixel(10, 7).0[..3], &[123, 90, 160], 24),
            "{format}"
        );
    }
}

#[test]
fn a_greyscale_image_comes_out_as_grey_rgb() {
    // Proves single-channel sources are widened to the RGB WebP needs, keeping their tone.
    let grey = DynamicImage::ImageLuma8(GrayImage::from_pixel(8, 8, Luma([100])));
    let (received, processed) = process_bytes(
        &encode(&grey, image::ImageFormat::Png),
        &VariantSpec::defaults(),
    );
    let out = read_webp(&received, &processed.variants[0].name);
    assert!(near(&out.get_pixel(4, 4).0[..3], &[100, 100, 100], 4));
}

#[test]
fn an_rgba_png_keeps_its_alpha_without_dark_fringes_at_transparent_edges() {
    // Proves alpha survives to the WebP and resizing premultiplies: no grey halo around white.
    let png = RgbaImage::from_fn(64, 64, |x, _| {
        Rgba(if x < 32 {
            [0, 0, 0, 0]
        } else {
            [255, 255, 255, 255]
        })
    });
    let bytes = encode(&DynamicImage::ImageRgba8(png), image::ImageFormat::Png);
    let (received, processed) = process_bytes(&bytes, &[spec("t", 16, 16, Fit::Inside)]);
    let out = read_webp(&received, &processed.variants[0].name);
    assert_eq!(out.color(), ColorType::Rgba8, "alpha channel dropped");
    let out = out.to_rgba8();
    for (x, y, px) in out.enumerate_pixels() {
        // Lanczos rings faintly (an alpha of 1 or 254) a few pixels either side of the edge.
        if x < 6 {
            assert!(px[3] <= 2, "transparent side at ({x},{y}) is {px:?}");
        }
        if x >= 10 {
            assert!(px[3] >= 250, "opaque side at ({x},{y}) is {px:?}");
        }
        // Averaging unpremultiplied pixels drags the edge towards the transparent black: grey
        // at half alpha, near black at low alpha. Premultiplied, it stays white at any alpha;
        // lossy coding may move it a little, never that far.
        if px[3] > 8 {
            assert!(
                px.0[..3].iter().all(|&c| c >= 200),
                "dark fringe at ({x},{y}): {px:?}"
            );
        }
    }
}

#[test]
fn a_one_by_one_image_yields_one_by_one_variants() {
    // Proves the smallest image passes through every step, in both fits.
    let bytes = encode(
        &DynamicImage::ImageRgb8(ImageBuffer::from_pixel(1, 1, Rgb([10, 200, 30]))),
        image::ImageFormat::Png,
    );
    let mut specs = VariantSpec::defaults();
    specs.push(spec("square", 100, 50, Fit::Cover));
    let (received, processed) = process_bytes(&bytes, &specs);
    for variant in &processed.variants {
        assert_eq!((variant.width, variant.height), (1, 1), "{}", variant.name);
        let out = read_webp(&received, &variant.name);
        assert!(
            near(&out.get_pixel(0, 0).0[..3], &[10, 200, 30], 24),
            "{}",
            variant.name
        );
    }
}

#[test]
fn a_sixteen_bit_png_is_converted_to_eight_bits_keeping_its_colours() {
    // Proves deep-colour input is scaled down (0x8080 is 128), not truncated or wrapped.
    let deep = ImageBuffer::<Rgb<u16>, _>::from_fn(32, 32, |x, _| {
        Rgb(if x < 16 {
            [0xFFFF, 0, 0x8080]
        } else {
            [0x3333, 0xCCCC, 0]
        })
    });
    let bytes = encode(&DynamicImage::ImageRgb16(deep), image::ImageFormat::Png);
    let (received, processed) = process_bytes(&bytes, &[spec("full", 100, 100, Fit::Inside)]);
    assert_eq!(processed.original.format, ImageFormat::Png);
    let out = read_webp(&received, &processed.variants[0].name);
    assert!(near(&out.get_pixel(4, 16).0[..3], &[255, 0, 128], 16));
    assert!(near(&out.get_pixel(27, 16).0[..3], &[51, 204, 0], 16));
}

#[test]
fn an_animated_gif_over_the_frame_limit_is_made_from_its_first_frame() {
    // Proves an animation cut short is frame one, not a later frame or a blend.
    let red = RgbaImage::from_pixel(16, 16, Rgba([255, 0, 0, 255]));
    let blue = RgbaImage::from_pixel(16, 16, Rgba([0, 0, 255, 255]));
    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut gif);
        encoder
            .encode_frames([Frame::new(red), Frame::new(blue)])
            .unwrap();
    }
    let (processed, received) =
        process_with(&gif, &[spec("full", 100, 100, Fit::Inside)], &ONE_FRAME);
    let processed = processed.unwrap();
    assert_eq!(processed.original.format, ImageFormat::Gif);
    assert!(!processed.variants[0].animated);
    let out = read_webp(&received, &processed.variants[0].name);
    assert!(
        near(&out.get_pixel(8, 8).0[..3], &[255, 0, 0], 40),
        "{:?}",
        out.get_pixel(8, 8)
    );
}

#[test]
fn an_animated_webp_over_the_frame_limit_is_made_from_its_first_frame() {
    // Proves the same for WebP animations, built here with libwebp's own animation encoder.
    let green = [0u8, 255, 0, 255].repeat(16 * 16);
    let blue = [0u8, 0, 255, 255].repeat(16 * 16);
    let mut config = crate::pipeline::libwebp::config(80.0, 4).unwrap();
    config.lossless = 1;
    let frames = [(green, 100), (blue, 100)];
    let animated = crate::pipeline::animation::encode(&frames, 16, 16, &config).unwrap();
    let (processed, received) = process_with(
        &animated,
        &[spec("full", 100, 100, Fit::Inside)],
        &ONE_FRAME,
    );
    let processed = processed.unwrap();
    assert_eq!(processed.original.format, ImageFormat::WebP);
    assert!(!processed.variants[0].animated);
    let out = read_webp(&received, &processed.variants[0].name);
    assert!(
        near(&out.get_pixel(8, 8).0[..3], &[0, 255, 0], 40),
        "{:?}",
        out.get_pixel(8, 8)
    );
}
