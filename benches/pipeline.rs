//! The image pipeline on a real photo: the whole job (decode, the two default variants, atomic
//! writes), then its parts, decode alone and each variant's resize and encode alone; decoding in
//! each format (full size, and scaled at load), the resizes alone; what colour management costs
//! (a 12 MP photo decoded untagged, then tagged Display P3 and converted to sRGB); and each
//! variant at every libwebp effort, with a table of bytes and PSNR that picks the default.
//!
//! The photo comes from Debian's `mate-backgrounds` package (`apt-get install -y
//! mate-backgrounds`): a 2560x1920 (4.9 MP) baseline JPEG of wood, a typical phone-sized upload.
//! Each iteration takes tens to hundreds of milliseconds, so samples are flat (the same number
//! of iterations each) rather than criterion's default linear ramp, which would overrun.

use std::fs::File;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use pixdrop::pipeline::{
    Control, Limits, MAX_EFFORT, VariantSpec, decode, decode_within, process, render,
};
use pixdrop::queue::JobId;
use pixdrop::storage::Storage;

const PHOTO: &str = "/usr/share/backgrounds/mate/nature/Wood.jpg";

fn photo() -> &'static Path {
    let path = Path::new(PHOTO);
    assert!(
        path.is_file(),
        "benchmark photo {PHOTO} is missing: install it with \
         `apt-get install -y mate-backgrounds` (Debian's MATE wallpapers)"
    );
    path
}

fn pipeline(c: &mut Criterion) {
    let source = photo();
    let limits = Limits::default();
    let specs = VariantSpec::defaults();
    let out = tempfile::tempdir().expect("a temporary directory for the variants");
    let storage = Storage::open(out.path()).expect("storage in the temporary directory");
    let job = JobId::new();
    let open = || File::open(source).expect("the benchmark photo opens");

    let decoded = decode(open(), &limits).expect("the benchmark photo decodes");
    let name = format!("pipeline/{}x{} jpeg", decoded.width(), decoded.height());
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);

    group.bench_function("process: decode + thumb + large + write", |b| {
        b.iter(|| {
            let mut writer = storage.variant_writer(&job);
            let control = Control::unlimited();
            let processed = process(open(), &specs, &limits, &control, &mut writer, &mut |_| {});
            black_box(processed.expect("the benchmark photo processes"))
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| black_box(decode(open(), &limits).expect("the benchmark photo decodes")))
    });
    for spec in &specs {
        group.bench_function(format!("render {}: resize + encode", spec.name()), |b| {
            b.iter(|| black_box(render(&decoded, spec).expect("the variant renders")))
        });
    }
    group.finish();
}

/// The photo tiled to 4000x3000 (12 MP) and saved as a JPEG twice: untagged, and converted to
/// Display P3 and tagged so, as a recent phone saves it.
fn twelve_megapixels() -> (Vec<u8>, Vec<u8>) {
    use image::codecs::jpeg::JpegEncoder;
    use image::{ExtendedColorType, ImageEncoder};
    use moxcms::{ColorProfile, Layout, TransformOptions};

    let wood = image::open(photo())
        .expect("the benchmark photo decodes")
        .into_rgb8();
    let (w, h) = (4000u32, 3000u32);
    let tiled = image::RgbImage::from_fn(w, h, |x, y| {
        *wood.get_pixel(x % wood.width(), y % wood.height())
    });
    let p3 = ColorProfile::new_display_p3();
    let to_p3 = ColorProfile::new_srgb()
        .create_transform_8bit(Layout::Rgb, &p3, Layout::Rgb, TransformOptions::default())
        .expect("an sRGB to P3 transform");
    let mut wide = vec![0; tiled.as_raw().len()];
    to_p3
        .transform(tiled.as_raw(), &mut wide)
        .expect("converts");
    let save = |pixels: &[u8], icc: Option<Vec<u8>>| {
        let mut out = Vec::new();
        let mut encoder = JpegEncoder::new_with_quality(&mut out, 90);
        if let Some(icc) = icc {
            encoder.set_icc_profile(icc).expect("JPEG takes a profile");
        }
        encoder
            .write_image(pixels, w, h, ExtendedColorType::Rgb8)
            .expect("encodes");
        out
    };
    (
        save(tiled.as_raw(), None),
        save(&wide, Some(p3.encode().expect("the profile encodes"))),
    )
}

fn colour(c: &mut Criterion) {
    let (untagged, tagged) = twelve_megapixels();
    let limits = Limits::default();
    let mut group = c.benchmark_group("colour/4000x3000 jpeg");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for (name, bytes) in [
        ("decode untagged", &untagged),
        ("decode Display P3 to sRGB", &tagged),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let decoded = decode(std::io::Cursor::new(bytes), &limits).expect("decodes");
                black_box(decoded)
            })
        });
    }
    group.finish();
}

/// Peak signal-to-noise ratio (dB) of `webp` decoded against `reference` (RGB rows): the
/// quality measure beside each effort's bytes.
fn psnr(reference: &[u8], webp: &[u8]) -> f64 {
    let decoded = image::load_from_memory(webp)
        .expect("the variant decodes")
        .into_rgb8();
    let decoded = decoded.as_raw();
    assert_eq!(decoded.len(), reference.len(), "same size as the reference");
    let squared: f64 = reference
        .iter()
        .zip(decoded)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    let mse = squared / reference.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// Each default variant at every libwebp effort (method 0 to 6): the time here, and once, before
/// the timings, a table of bytes and PSNR against the lossless resize, which picks the default.
fn effort(c: &mut Criterion) {
    let limits = Limits::default();
    let decoded = decode(File::open(photo()).expect("opens"), &limits).expect("decodes");
    let mut group = c.benchmark_group("encode effort");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for base in VariantSpec::defaults() {
        let reference = render_reference(&decoded, &base);
        eprintln!("{:>6} effort  bytes    PSNR dB", base.name());
        for effort in 0..=MAX_EFFORT {
            let spec = base.clone().with_effort(effort).expect("a valid effort");
            let rendered = render(&decoded, &spec).expect("renders");
            eprintln!(
                "{:>6} {effort:>6}  {:>7}  {:.2}",
                base.name(),
                rendered.webp().len(),
                psnr(&reference, rendered.webp())
            );
            group.bench_function(format!("{} effort {effort}", base.name()), |b| {
                b.iter(|| black_box(render(&decoded, &spec).expect("renders")))
            });
        }
    }
    group.finish();
}

/// The variant's pixels before encoding, resized as the pipeline resizes them (Lanczos3).
fn render_reference(decoded: &pixdrop::pipeline::DecodedImage, spec: &VariantSpec) -> Vec<u8> {
    let (width, height) = decoded.pixel_size();
    lanczos(decoded.pixels(), width, height, spec.max_width())
}

/// RGB `pixels` (`width` x `height`) resized with Lanczos3 to `longest` px on the longer side.
fn lanczos(pixels: &[u8], width: u32, height: u32, longest: u32) -> Vec<u8> {
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let scale = f64::from(longest) / f64::from(width.max(height));
    let (w, h) = (
        (f64::from(width) * scale).round() as u32,
        (f64::from(height) * scale).round() as u32,
    );
    let src = ImageRef::new(width, height, pixels, PixelType::U8x3).expect("an RGB photo");
    let mut dst = Image::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("resizes");
    dst.into_vec()
}

/// The photo in each accepted format that matters for uploads, decoded alone: full size (no
/// variants to fit), and for the 17.9 MP JPEG also at the scale the default variants allow
/// (libjpeg-turbo at 1/2). Then the resizes of the 4.9 MP photo to each default variant, and the
/// thumb from the large variant's pixels, as the pipeline makes it.
fn formats(c: &mut Criterion) {
    use image::codecs::png::PngEncoder;
    use image::{ExtendedColorType, ImageEncoder};
    let limits = Limits::default();
    let wood = image::open(photo())
        .expect("the benchmark photo decodes")
        .into_rgb8();
    let (w, h) = wood.dimensions();
    let png = |pixels: &[u8], kind| {
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(pixels, w, h, kind)
            .expect("encodes");
        out
    };
    let rgba: Vec<u8> = wood
        .pixels()
        .enumerate()
        .flat_map(|(i, p)| [p[0], p[1], p[2], (i % 251) as u8])
        .collect();
    let decoded = decode(File::open(photo()).expect("opens"), &limits).expect("decodes");
    let full =
        VariantSpec::new("full", w, h, pixdrop::pipeline::Fit::Inside, 90.0).expect("a valid spec");
    let webp = render(&decoded, &full).expect("renders").webp().to_vec();
    let big = tiled_jpeg(&wood, 5184, 3456);
    let inputs: Vec<(&str, Vec<u8>, bool)> = vec![
        ("jpeg 4.9 MP", std::fs::read(photo()).expect("reads"), false),
        ("jpeg 17.9 MP", big.clone(), false),
        ("jpeg 17.9 MP scaled for thumb + large", big, true),
        (
            "png rgb 4.9 MP",
            png(wood.as_raw(), ExtendedColorType::Rgb8),
            false,
        ),
        (
            "png rgba 4.9 MP",
            png(&rgba, ExtendedColorType::Rgba8),
            false,
        ),
        ("webp lossy 4.9 MP", webp, false),
    ];
    let mut group = c.benchmark_group("decode");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let specs = VariantSpec::defaults();
    for (name, bytes, scaled) in &inputs {
        let specs: &[VariantSpec] = if *scaled { &specs } else { &[] };
        group.bench_function(*name, |b| {
            b.iter(|| {
                let source = std::io::Cursor::new(bytes);
                black_box(decode_within(source, &limits, specs, &Control::unlimited()))
                    .expect("decodes")
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("resize lanczos3");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let large = lanczos(decoded.pixels(), w, h, 1280);
    for (name, longest) in [("4.9 MP to 1280", 1280), ("4.9 MP to 320", 320)] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(lanczos(decoded.pixels(), w, h, longest)))
        });
    }
    group.bench_function("1280 to 320 (thumb from large)", |b| {
        b.iter(|| black_box(lanczos(&large, 1280, 960, 320)))
    });
    group.finish();
}

/// The photo tiled to `w` x `h` and saved as a quality 90 JPEG.
fn tiled_jpeg(photo: &image::RgbImage, w: u32, h: u32) -> Vec<u8> {
    use image::codecs::jpeg::JpegEncoder;
    let tiled = image::RgbImage::from_fn(w, h, |x, y| {
        *photo.get_pixel(x % photo.width(), y % photo.height())
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&tiled)
        .expect("encodes");
    out
}

criterion_group!(benches, pipeline, formats, colour, effort);
criterion_main!(benches);
