//! The image pipeline on a real photo: the whole job (decode, the two default variants, atomic
//! writes), then its parts, decode alone and each variant's resize and encode alone.
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

criterion_group!(benches, pipeline);
criterion_main!(benches);
