//! The entries fuzzing drives (`fuzz/`, `scripts/fuzz`): any bytes through the image path, and any
//! bytes as an upload's body. Each entry states what must hold for every input and panics when it
//! does not; refusals are fine. The fuzz targets are one call each to these, and the normal tests
//! replay every input kept in `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` through
//! the same code, so a crash once found stays fixed.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use actix_web::web::Bytes;

use crate::http::settings::UploadSettings;
use crate::http::upload::receive_parts;
use crate::pipeline::{Control, Fit, Limits, Sniffed, VariantSpec, process, sniff};
use crate::storage::Storage;

/// One fuzz entry: runs one input, panicking when an invariant breaks.
pub type Entry = fn(&[u8]);

/// Every target, by the name its fuzz target and its input directories carry.
pub const TARGETS: [(&str, Entry); 2] = [
    ("image", |bytes| {
        image(bytes);
    }),
    ("upload", |bytes| {
        let _ = upload_body(bytes);
    }),
];

/// The boundary the upload target's bodies use (seeds are written with it).
pub const UPLOAD_BOUNDARY: &str = "pixdrop-fuzz";

/// Any bytes through what a worker does with an upload: sniff, then decode, orient, resize and
/// encode, with limits small enough that each run is quick. A success yields exactly the one
/// variant asked for, as WebP. Returns whether it succeeded.
pub fn image(bytes: &[u8]) -> bool {
    if !matches!(sniff(bytes), Sniffed::Image(_)) {
        return false;
    }
    let limits = Limits {
        max_pixels: 4_000_000,
        max_frames: 20,
        max_animation_pixels: 4_000_000,
        ..Limits::default()
    };
    let specs = [VariantSpec::new("t", 64, 64, Fit::Inside, 50.0).expect("a valid spec")];
    let mut received: Vec<(String, Vec<u8>)> = Vec::new();
    let processed = process(
        Cursor::new(bytes),
        &specs,
        &limits,
        &Control::unlimited(),
        &mut received,
        &mut |_| {},
    );
    if processed.is_ok() {
        assert_eq!(received.len(), 1, "one variant per spec");
        let (name, webp) = &received[0];
        assert_eq!(name, "t");
        assert!(webp.starts_with(b"RIFF"), "the variant is not WebP");
    }
    processed.is_ok()
}

/// Any bytes as the body of `POST /upload` (`multipart/form-data; boundary=pixdrop-fuzz`), read
/// by the same code the handler uses, with small limits. The first byte sets the size of the
/// chunks the body arrives in, so every split of a boundary or a header end is tried.
///
/// What must hold: a refusal is a client error (400, 413 or 415), never a server one; an accepted
/// body has between one and `max_files` files, none empty or over `max_file_bytes`, together no
/// larger than the body; and once the outcome is dropped, staging holds no file. Returns how many
/// files were accepted, or the refusal's problem code.
pub fn upload_body(input: &[u8]) -> Result<usize, &'static str> {
    let Some((&split, body)) = input.split_first() else {
        return Err("no-input");
    };
    let limits = UploadSettings {
        max_file_bytes: 16 * 1024,
        max_files: 3,
        max_body_bytes: 64 * 1024,
        max_part_header_bytes: 1024,
        max_text_fields: 2,
        max_text_field_bytes: 256,
        ..UploadSettings::default()
    };
    let chunks: Vec<Result<Bytes, PayloadError>> = body
        .chunks(usize::from(split) + 1)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&format!("multipart/form-data; boundary={UPLOAD_BOUNDARY}"))
            .expect("a valid header"),
    );
    let scratch = upload_scratch();
    let outcome = scratch.runtime.block_on(receive_parts(
        &headers,
        futures_util::stream::iter(chunks),
        &scratch.storage,
        &limits,
    ));
    let answer = match &outcome {
        Ok(received) => {
            let files = &received.files;
            assert!(
                (1..=limits.max_files).contains(&files.len()),
                "{} files",
                files.len()
            );
            let mut total = 0;
            for file in files {
                let bytes = file.staged.bytes();
                assert!(
                    (1..=limits.max_file_bytes).contains(&bytes),
                    "a file of {bytes} bytes"
                );
                total += bytes;
            }
            assert!(
                total <= body.len() as u64,
                "{total} file bytes from a {} byte body",
                body.len()
            );
            Ok(files.len())
        }
        Err(problem) => {
            assert!(
                matches!(problem.status.as_u16(), 400 | 413 | 415),
                "refused as a server error: {problem:?}"
            );
            Err(problem.code)
        }
    };
    drop(outcome);
    let left = std::fs::read_dir(&scratch.staging)
        .expect("staging is readable")
        .count();
    assert_eq!(left, 0, "staging kept {left} files after the request ended");
    answer
}

/// One runtime and one storage directory per process, for every input the upload target runs.
struct UploadScratch {
    runtime: tokio::runtime::Runtime,
    storage: Storage,
    staging: PathBuf,
}

fn upload_scratch() -> &'static UploadScratch {
    static SCRATCH: OnceLock<UploadScratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        // Kept for the process's life: inputs run until it ends.
        let root = tempfile::tempdir().expect("a temp dir").keep();
        let storage = Storage::open(&root).expect("storage opens");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        UploadScratch {
            runtime,
            storage,
            staging: root.join("tmp"),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{TARGETS, image, upload_body};

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target)
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The seeds reach every way the upload target can end, so fuzzing starts from bodies the
    /// parser accepts and from each refusal, not from noise the boundary check rejects.
    #[test]
    fn the_upload_seeds_are_answered_as_named() {
        let expected: [(&str, Result<usize, &str>); 11] = [
            ("one-png", Ok(1)),
            ("one-png-byte-by-byte", Ok(1)),
            ("media-and-fields", Ok(1)),
            ("short-ftyp", Err("unsupported-type")),
            ("not-an-image", Err("unsupported-type")),
            ("header-never-ends", Err("part-header-too-large")),
            ("too-many-files", Err("too-many-files")),
            ("too-many-fields", Err("too-many-fields")),
            ("no-file", Err("no-file")),
            ("no-closing-boundary", Err("malformed-multipart")),
            ("empty-file", Err("empty-file")),
        ];
        for (name, answer) in expected {
            assert_eq!(upload_body(&seed("upload", name)), answer, "{name}");
        }
    }

    /// Every image seed is a real file of an accepted format, so fuzzing starts inside each
    /// decoder rather than at the sniffer's door.
    #[test]
    fn every_image_seed_becomes_a_variant() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/image");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(image(&seed("image", &name)), "{name}");
        }
    }

    /// Every seed and every input fuzzing ever found a crash with, through its target again.
    #[test]
    fn every_kept_fuzz_input_passes_its_target() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        for (target, run) in TARGETS {
            let mut replayed = 0;
            for kind in ["seeds", "regressions"] {
                let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let bytes = std::fs::read(&path).unwrap();
                    eprintln!("{target}: {}", path.display());
                    run(&bytes);
                    replayed += 1;
                }
            }
            assert!(replayed > 0, "no kept inputs for the {target} target");
        }
    }
}
