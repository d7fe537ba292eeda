//! `POST /upload`: every file part (`file`, or `media` as the Node stack names it) becomes one job.
//! Each part is streamed into storage's staging while it is hashed and counted, never held whole in
//! memory; its format is sniffed from its first bytes. The request is all or nothing: any bad
//! part, or Redis unreachable, drops every staged or committed upload of the request (which
//! removes its files) and enqueues nothing.
//!
//! Before a byte is read, the upload takes a place at the gate (`gate.rs`: so many at once, in all
//! and per client) and the disk must have room. The body is read through a guard (`body.rs`) that
//! counts every byte, bounds each part header and times the body out when it stalls or drags.

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;

use super::AppState;
use super::body::{BodyLimits, BodyWatch, Cut, GuardedBody};
use super::gate::Busy;
use super::problem::Problem;
use super::settings::UploadSettings;
use crate::image_job::ImageJob;
use crate::pipeline::{ImageFormat, SNIFF_LEN, Sniffed, accepted_in_words, sniff};
use crate::queue::{JobId, QueueError};
use crate::storage::{CommittedOriginal, StagedUpload, Storage, StorageKey};

/// Field names that carry files.
const FILE_FIELDS: [&str; 2] = ["file", "media"];
/// Longest client filename we keep (it is data, shown back to the client).
const MAX_FILENAME: usize = 255;

pub async fn upload(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let limits = &state.uploads;
    let length = content_length(&req);
    if length.is_some_and(|length| length > limits.max_body_bytes) {
        return Err(body_too_large(limits));
    }
    let _place = state
        .uploads_gate
        .enter(req.peer_addr().map(|a| a.ip()))
        .map_err(|busy| match busy {
            Busy::Server => Problem::unavailable(
                "pixdrop is taking as many uploads as it can; try again in a few seconds",
            ),
            Busy::Client => Problem::too_many_requests(
                "too-many-uploads",
                format!(
                    "at most {} uploads at once from one address; wait for one to finish",
                    limits.max_concurrent_per_client
                ),
            ),
        })?;
    check_free_space(&state, length.unwrap_or(0))?;

    let watch = BodyWatch::default();
    let body = GuardedBody::new(
        body,
        BodyLimits {
            max_bytes: limits.max_body_bytes,
            max_header_bytes: limits.max_part_header_bytes,
            idle: limits.body_idle_timeout(),
            deadline: limits.body_timeout(),
        },
        watch.clone(),
    );
    let refused = |e: MultipartError| refusal(e, &watch, limits);
    let mut multipart = Multipart::new(req.headers(), body);
    let mut received: Vec<ReceivedFile> = Vec::new();
    let mut text_fields = 0;
    loop {
        watch.expect_header();
        let Some(field) = multipart.next().await else {
            break;
        };
        watch.in_data();
        let mut field = field.map_err(refused)?;
        let name = field.name().unwrap_or_default().to_owned();
        if !FILE_FIELDS.contains(&name.as_str()) {
            // Other form fields are allowed and ignored, within limits.
            text_fields += 1;
            if text_fields > limits.max_text_fields {
                return Err(Problem::too_large(
                    "too-many-fields",
                    format!(
                        "at most {} fields besides the files per request",
                        limits.max_text_fields
                    ),
                ));
            }
            let mut bytes = 0u64;
            while let Some(chunk) = field.next().await {
                bytes += chunk.map_err(refused)?.len() as u64;
                if bytes > limits.max_text_field_bytes {
                    return Err(Problem::too_large(
                        "field-too-large",
                        format!(
                            "the field {name:?} is larger than the limit of {}",
                            in_words(limits.max_text_field_bytes)
                        ),
                    ));
                }
            }
            continue;
        }
        if received.len() >= limits.max_files {
            return Err(Problem::too_large(
                "too-many-files",
                format!("at most {} files per request", limits.max_files),
            ));
        }
        let file = receive_file(&mut field, &state.storage, limits, &refused).await?;
        received.push(file);
    }
    if received.is_empty() {
        return Err(Problem::bad_request(
            "no-file",
            "the request has no file part: send multipart/form-data with a field named \"file\"",
        ));
    }

    // Every part is whole and acceptable: put each under its content's key.
    let mut committed = Vec::with_capacity(received.len());
    let mut jobs = Vec::with_capacity(received.len());
    for file in received {
        let original = file
            .staged
            .commit(file.format)
            .await
            .map_err(storage_error)?;
        jobs.push(ImageJob {
            original: original.key.clone(),
            filename: file.filename,
            bytes: original.bytes,
            sha256: original.sha256.clone(),
            format: file.format,
        });
        committed.push(original);
    }
    let payloads: Vec<serde_json::Value> = jobs
        .iter()
        .map(|job| serde_json::to_value(job).map_err(Problem::internal))
        .collect::<Result<_, _>>()?;
    let ids: Vec<JobId> = jobs.iter().map(|_| JobId::new()).collect();
    // From here a request dropped mid-way keeps its files: the enqueue may take effect though its
    // answer never comes, and a queued job must find its original. Only an enqueue known to have
    // failed removes what this request created.
    let created: Vec<StorageKey> = committed
        .into_iter()
        .filter_map(CommittedOriginal::keep)
        .collect();
    if let Err(e) = state.queue.enqueue_as(&ids, &payloads).await {
        match enqueued_after_all(&state, &ids, &e).await {
            Some(true) => {
                tracing::warn!(error = %e, "the enqueue's answer was lost, but it took effect")
            }
            Some(false) => {
                for key in &created {
                    if let Err(e) = state.storage.delete(key).await {
                        tracing::warn!(error = %e, %key, "could not remove a refused upload");
                    }
                }
                return Err(Problem::from(e));
            }
            None => {
                tracing::warn!(error = %e, "enqueue outcome unknown; keeping the uploads");
                return Err(Problem::unavailable(
                    "the job store did not answer in time: the upload may or may not have been \
                     accepted; try again shortly",
                ));
            }
        }
    }
    let answers: Vec<serde_json::Value> = ids
        .iter()
        .zip(&jobs)
        .map(|(id, job)| {
            json!({
                "id": id,
                "state": "queued",
                "filename": job.filename,
                "bytes": job.bytes,
                "status_url": format!("/jobs/{id}"),
                "events_url": format!("/ws?job={id}"),
            })
        })
        .collect();
    tracing::info!(jobs = ids.len(), "upload accepted");
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/jobs/{}", ids[0])))
        .json(json!({ "jobs": answers })))
}

/// Whether a failed enqueue took effect after all: `Some(false)` when it certainly did not,
/// `Some(true)` when its jobs exist (the answer was lost, not the call), `None` when that cannot
/// be told now.
async fn enqueued_after_all(state: &AppState, ids: &[JobId], error: &QueueError) -> Option<bool> {
    if !error.is_unknown_outcome() {
        return Some(false);
    }
    // The batch is one script: its jobs exist all together or not at all.
    match state.queue.exist(ids).await {
        Ok(found) => Some(found.iter().any(|&exists| exists)),
        Err(_) => None,
    }
}

/// One file part, received whole into staging.
struct ReceivedFile {
    staged: StagedUpload,
    filename: Option<String>,
    format: ImageFormat,
}

/// Streams one part into staging, sniffing its first bytes and holding it to the size limits.
async fn receive_file(
    field: &mut Field,
    storage: &Storage,
    limits: &UploadSettings,
    refused: &impl Fn(MultipartError) -> Problem,
) -> Result<ReceivedFile, Problem> {
    let filename = field
        .content_disposition()
        .and_then(|cd| cd.get_filename())
        .map(|name| name.chars().take(MAX_FILENAME).collect::<String>());
    let mut staged = storage.stage().await.map_err(storage_error)?;
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_LEN);
    let mut format = None;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(refused)?;
        if staged.bytes() + chunk.len() as u64 > limits.max_file_bytes {
            return Err(Problem::too_large(
                "file-too-large",
                format!(
                    "{} is larger than the limit of {}",
                    filename.as_deref().unwrap_or("the file"),
                    in_words(limits.max_file_bytes)
                ),
            ));
        }
        if format.is_none() {
            let wanted = SNIFF_LEN - head.len();
            head.extend_from_slice(&chunk[..wanted.min(chunk.len())]);
            if head.len() == SNIFF_LEN {
                format = Some(check_format(&head, filename.as_deref())?);
            }
        }
        staged.write(&chunk).await.map_err(storage_error)?;
    }
    if staged.bytes() == 0 {
        return Err(Problem::bad_request(
            "empty-file",
            format!(
                "{} is empty",
                filename.as_deref().unwrap_or("the file part")
            ),
        ));
    }
    let format = match format {
        Some(format) => format,
        None => check_format(&head, filename.as_deref())?,
    };
    Ok(ReceivedFile {
        staged,
        filename,
        format,
    })
}

fn check_format(head: &[u8], filename: Option<&str>) -> Result<ImageFormat, Problem> {
    match sniff(head) {
        Sniffed::Image(format) => Ok(format),
        Sniffed::Other { mime } => {
            let mut problem = Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-type",
                format!(
                    "{} looks like {mime}; accepted are {} images",
                    filename.unwrap_or("the file"),
                    accepted_in_words("and")
                ),
            );
            problem.detected_type = Some(mime.to_owned());
            Err(problem)
        }
    }
}

fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn body_too_large(limits: &UploadSettings) -> Problem {
    Problem::too_large(
        "body-too-large",
        format!(
            "the request body is larger than the limit of {}",
            in_words(limits.max_body_bytes)
        ),
    )
}

/// A size limit as people read it, with the exact count: `50 MiB (52428800 bytes)`.
fn in_words(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    match UNITS.iter().find(|(size, _)| bytes >= *size) {
        Some((size, unit)) => {
            let amount = bytes as f64 / *size as f64;
            let amount = format!("{amount:.1}");
            let amount = amount.trim_end_matches(".0");
            format!("{amount} {unit} ({bytes} bytes)")
        }
        None => format!("{bytes} bytes"),
    }
}

/// The answer to a body the parser gave up on: the guard's reason when it cut the body short,
/// else the body is not multipart.
fn refusal(e: MultipartError, watch: &BodyWatch, limits: &UploadSettings) -> Problem {
    match watch.cut() {
        Some(Cut::TooLarge) => body_too_large(limits),
        Some(Cut::HeaderTooLarge) => Problem::bad_request(
            "part-header-too-large",
            format!(
                "a part's header is longer than the limit of {}; is the body really multipart?",
                in_words(limits.max_part_header_bytes as u64)
            ),
        ),
        Some(Cut::Idle) => Problem::timeout(
            "body-idle",
            format!(
                "no part of the body arrived for {} s; the upload was dropped",
                limits.body_idle_timeout_secs
            ),
        ),
        Some(Cut::Deadline) => Problem::timeout(
            "body-timeout",
            format!(
                "the body took longer than {} s to arrive; the upload was dropped",
                limits.body_timeout_secs
            ),
        ),
        None => Problem::bad_request(
            "malformed-multipart",
            format!("the body is not valid multipart/form-data: {e}"),
        ),
    }
}

/// Refuses the upload when the disk would be left with less than `storage.min_free_bytes`.
fn check_free_space(state: &AppState, incoming: u64) -> Result<(), Problem> {
    let free = state.storage.free_bytes().map_err(Problem::internal)?;
    if free < state.min_free_bytes.saturating_add(incoming) {
        tracing::warn!(
            free,
            min_free = state.min_free_bytes,
            "refusing uploads: disk nearly full"
        );
        return Err(insufficient_storage());
    }
    Ok(())
}

fn insufficient_storage() -> Problem {
    Problem::new(
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient-storage",
        "the server is out of storage space; nothing was stored, try again later",
    )
}

/// A storage failure: a full disk is the client's to know about (507); anything else is ours.
fn storage_error(e: std::io::Error) -> Problem {
    if e.kind() == std::io::ErrorKind::StorageFull {
        tracing::warn!(error = %e, "disk full while storing an upload");
        return insufficient_storage();
    }
    Problem::internal(e)
}

#[cfg(test)]
mod tests {
    use super::in_words;

    #[test]
    fn limits_read_in_the_largest_whole_unit_with_the_exact_count() {
        assert_eq!(in_words(52_428_800), "50 MiB (52428800 bytes)");
        assert_eq!(in_words(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(in_words(1000), "1000 bytes");
        assert_eq!(in_words(3 << 30), "3 GiB (3221225472 bytes)");
    }
}
