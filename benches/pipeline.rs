//! The image pipeline on a real photo: the whole job (decode, the two default variants, atomic
//! writes), then its parts, decode alone and each variant's resize and encode alone; and what colour
//! management costs: a 12 MP photo decoded untagged, then tagged Display P3 (converted to sRGB).
//!
//! The photo comes from Debian's `mate-backgrounds` package (`apt-get install -y
//! mate-backgrounds`): a 2560x1920 (4.9 MP) baseline JPEG of wood, a typical phone-sized upload.
//! Each iteration takes tens to hundreds of milliseconds, so samples are flat (the same number
//! of iterations each) rather than criterion's default linear ramp, which would overrun.

use std::fs::File;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use pixdrop::pipeline::{Control, Limits, VariantSpec, decode, process, render};
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

criterion_group!(benches, pipeline, colour);
criterion_main!(benches);
