//! `POST /upload`: every file part (`file`, or `media` as the Node stack names it) becomes one job.
//! Each part is streamed into storage's staging while it is hashed and counted, never held whole in
//! memory; its format is sniffed from its first bytes. The request is all or nothing: any bad
//! part, or Redis unreachable, drops every staged or committed upload of the request (which
//! removes its files) and enqueues nothing.
//!
//! Before a byte is read, the upload takes a place at the gate (`gate.rs`: so many at once, in all
//! and per client) and the disk must have room. The body is read through a guard (`body.rs`) that
//! counts every byte, bounds each part header and times the body out when it stalls or drags.
//! Each file part is received by `receive.rs`; the answers a refusal gets are in `refusal.rs`.

mod receive;
mod refusal;

use actix_multipart::{Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::http::header::HeaderMap;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::Stream;
use serde_json::json;

use super::AppState;
use super::body::{BodyLimits, BodyWatch, GuardedBody};
use super::caller::Caller;
use super::gate::Busy;
use super::problem::Problem;
use super::settings::UploadSettings;
use crate::image_job::ImageJob;
use crate::queue::{JobId, QueueError};
use crate::storage::{CommittedOriginal, Storage, StorageKey};
pub(crate) use receive::ReceivedFile;
use receive::receive_file;
use refusal::{body_too_large, check_free_space, in_words, refusal, storage_error};

/// Field names that carry files.
const FILE_FIELDS: [&str; 2] = ["file", "media"];

pub async fn upload(
    caller: Caller,
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
    let subject = &caller.0.subject;
    // A subject out of uploads for this minute is told so before it sends a byte more.
    state.quotas.upload_room(subject).await??;

    let received = receive_parts(req.headers(), body, &state.storage, limits).await?;
    let files = received.len() as u64;
    let bytes: u64 = received.iter().map(|file| file.staged.bytes()).sum();
    state.quotas.take_upload(subject, files, bytes).await??;

    // Every part is whole and acceptable: put each under its content's key.
    let mut committed = Vec::with_capacity(received.len());
    let mut jobs = Vec::with_capacity(received.len());
    for file in received {
        let original = match file.staged.commit(file.format).await {
            Ok(original) => original,
            Err(e) => {
                state.quotas.refund(subject, files, bytes).await?;
                return Err(storage_error(e));
            }
        };
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
    if let Err(e) = state.queue.enqueue_as(&ids, &payloads, subject).await {
        match enqueued_after_all(&state, &ids, &e).await {
            Some(true) => {
                tracing::warn!(error = %e, "the enqueue's answer was lost, but it took effect")
            }
            Some(false) => {
                if let Err(e) = state.quotas.refund(subject, files, bytes).await {
                    tracing::warn!(error = %e, "could not give back a refused upload's quota");
                }
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
    tracing::info!(jobs = ids.len(), subject = %caller.0.subject, "upload accepted");
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/jobs/{}", ids[0])))
        .json(json!({ "jobs": answers })))
}

/// Reads a multipart body to its end through the guard: each file part streamed into staging,
/// other fields counted and dropped, every limit of `limits` applied. Refuses a body without a
/// file part.
pub(crate) async fn receive_parts<S>(
    headers: &HeaderMap,
    body: S,
    storage: &Storage,
    limits: &UploadSettings,
) -> Result<Vec<ReceivedFile>, Problem>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
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
    let mut multipart = Multipart::new(headers, body);
    let mut received: Vec<ReceivedFile> = Vec::new();
    let mut text_fields = 0;
    loop {
        watch.expect_header();
        let Some(field) = watch.next(&mut multipart).await else {
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
            while let Some(chunk) = watch.next(&mut field).await {
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
        let file = receive_file(&mut field, &watch, storage, limits, &refused).await?;
        received.push(file);
    }
    if received.is_empty() {
        return Err(Problem::bad_request(
            "no-file",
            "the request has no file part: send multipart/form-data with a field named \"file\"",
        ));
    }
    Ok(received)
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

fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
