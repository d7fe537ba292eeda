//! What uploads cost in memory, on a release `pixdrop serve --no-workers` (the upload path alone)
//! with its own Redis: one 1 GiB upload (the limits raised for it), then 200 uploads of 8 MiB at
//! once, each sent in 64 KiB chunks. Prints
//! pixdrop's resident memory before, its peak during each part (VmHWM, reset between them), and
//! the growth; exits 1 when the 1 GiB upload grew it by 50 MiB or more, or any of the 200 was
//! answered with something other than 202 or a 503 with `Retry-After` (over `max_concurrent`).
//!
//!   cargo build --release && cargo bench --bench upload_memory

// Each bench uses part of it.
#[allow(dead_code)]
#[path = "support/server.rs"]
mod server;

use std::time::Instant;

use futures_util::stream;
use server::{Server, memory_of};

const CHUNK: usize = 64 << 10;
const GIB: u64 = 1 << 30;

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if !runtime.block_on(measure()) {
        std::process::exit(1);
    }
}

/// A multipart body holding one file of `bytes` bytes that sniffs as a JPEG (its first bytes),
/// streamed in `CHUNK`s generated as they are sent: the client holds one chunk at a time.
fn streamed_upload(bytes: u64) -> (reqwest::Body, String) {
    let boundary = "pixdropMemoryBench";
    let mut head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    head.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
    let filler = bytes - 4;
    let chunks = filler.div_ceil(CHUNK as u64);
    let body = stream::iter(
        std::iter::once(head)
            .chain((0..chunks).map(move |i| {
                let len = (filler - i * CHUNK as u64).min(CHUNK as u64) as usize;
                // Not all zeros: nothing on the way may compress it away.
                (0..len)
                    .map(|j| (j as u8).wrapping_mul(31) ^ (i as u8))
                    .collect()
            }))
            .chain(std::iter::once(tail))
            .map(Ok::<Vec<u8>, std::io::Error>),
    );
    (
        reqwest::Body::wrap_stream(body),
        format!("multipart/form-data; boundary={boundary}"),
    )
}

/// Resets the process's peak resident memory (VmHWM) to its current size.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

async fn measure() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let limit = (GIB + (1 << 20)).to_string();
    // HTTP only: the measurement is of the upload path; the jobs wait in the queue.
    let server = Server::start_with_args(
        dir.path(),
        &[
            ("PIXDROP__UPLOADS__MAX_FILE_BYTES", limit.clone()),
            ("PIXDROP__UPLOADS__MAX_BODY_BYTES", limit),
            ("PIXDROP__UPLOADS__MAX_CONCURRENT_PER_CLIENT", "256".into()),
            ("PIXDROP__STORAGE__MIN_FREE_BYTES", "0".into()),
        ],
        &["serve", "--no-workers"],
    )
    .await;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let mut ok = true;

    let (before, _) = memory_of(pid);
    reset_peak(pid);
    let started = Instant::now();
    let (body, kind) = streamed_upload(GIB);
    let status = client
        .post(format!("{}/upload", server.address))
        .header("Content-Type", kind)
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    let (_, peak) = memory_of(pid);
    let growth = peak.saturating_sub(before);
    println!(
        "upload_memory: 1 GiB upload answered {status} in {:.1} s; resident {} MiB before, \
         peak {} MiB during: grew {} MiB",
        started.elapsed().as_secs_f64(),
        before >> 20,
        peak >> 20,
        growth >> 20
    );
    ok &= status == 202 && growth < 50 << 20;

    let (before, _) = memory_of(pid);
    reset_peak(pid);
    let uploads: Vec<_> = (0..200)
        .map(|_| {
            let (client, address) = (client.clone(), server.address.clone());
            tokio::spawn(async move {
                let (body, kind) = streamed_upload(8 << 20);
                match client
                    .post(format!("{address}/upload"))
                    .header("Content-Type", kind)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => (r.status().as_u16(), r.headers().contains_key("retry-after")),
                    // Refused while still sending: the server answered before reading it all.
                    Err(_) => (0, false),
                }
            })
        })
        .collect();
    let (mut accepted, mut refused, mut other) = (0, 0, 0);
    for upload in uploads {
        match upload.await.unwrap() {
            (202, _) => accepted += 1,
            (503, true) => refused += 1,
            _ => other += 1,
        }
    }
    let (_, peak) = memory_of(pid);
    println!(
        "upload_memory: 200 uploads of 8 MiB at once: {accepted} accepted, {refused} refused 503 \
         with Retry-After, {other} otherwise; resident {} MiB before, peak {} MiB: grew {} MiB",
        before >> 20,
        peak >> 20,
        peak.saturating_sub(before) >> 20
    );
    ok &= other == 0 && accepted > 0;
    ok
}
