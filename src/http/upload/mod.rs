//! `POST /upload`: every file part (`file`, or `media` as the Node stack names it) becomes one job.
//! A `priority` field of `high` (the page's drops send it) puts the request's jobs in the
//! high-priority line, claimed before bulk uploads (see `crate::queue::Priority`).
//! Each part is streamed into storage's staging while it is hashed and counted, never held whole in
//! memory; its format is sniffed from its first bytes. The request is all or nothing: any bad
//! part, or Redis unreachable, drops every staged upload of the request (which removes its temp
//! files) and enqueues nothing; originals already committed are let go through their pin (see
//! `crate::cleanup`), as they may be shared with other uploads of the same bytes.
//!
//! Each job's answer carries a `delete_token`, given once: its holder may delete the upload
//! (`DELETE /uploads/{id}`), which is how an upload without sign-in is deleted.
//!
//! Before a byte is read, the upload takes a place at the gate (`gate.rs`: so many at once, in all
//! and per client) and the disk must have room. The body is read through a guard (`body.rs`) that
//! counts every byte, bounds each part header and times the body out when it stalls or drags.
//! Each file part is received by `receive.rs`; the answers a refusal gets are in `refusal.rs`.

mod delete;
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
use crate::auth::delete_token::DeleteToken;
use crate::image_job::ImageJob;
use crate::queue::{JobId, NewJob, Priority, QueueError};
use crate::storage::Storage;
pub use delete::delete;
pub(crate) use receive::ReceivedFile;
use receive::receive_file;
use refusal::{body_too_large, check_free_space, in_words, refusal, storage_error};

/// Field names that carry files.
const FILE_FIELDS: [&str; 2] = ["file", "media"];
/// The field that asks for a line other than the bulk one.
const PRIORITY_FIELD: &str = "priority";

/// A request's body, received whole: its files, staged, and the line its jobs wait in.
pub(crate) struct Received {
    pub(crate) files: Vec<ReceivedFile>,
    pub(crate) priority: Priority,
}

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

    let Received {
        files: received,
        priority,
    } = receive_parts(req.headers(), body, &state.storage, limits).await?;
    let files = received.len() as u64;
    let bytes: u64 = received.iter().map(|file| file.staged.bytes()).sum();
    state.quotas.take_upload(subject, files, bytes).await??;
    let refund = || async {
        if let Err(e) = state.quotas.refund(subject, files, bytes).await {
            tracing::warn!(error = %e, "could not give back a refused upload's quota");
        }
    };

    // Every part is whole and acceptable. Pin the contents before any file goes into place, so a
    // sweep removing the same bytes meanwhile puts them back (see `crate::cleanup`).
    let contents: Vec<String> = received.iter().map(|file| file.staged.sha256()).collect();
    let pin = match state.queue.pin(&contents, PIN_LAPSE).await {
        Ok(Ok(pin)) => pin,
        Ok(Err(blocked)) => {
            refund().await;
            return Err(blocked_content(received[blocked.index].filename.as_deref()));
        }
        Err(e) => {
            refund().await;
            return Err(Problem::from(e));
        }
    };
    let unpin = || async {
        if let Err(e) = state.queue.unpin(&pin).await {
            tracing::warn!(error = %e, "could not unpin a refused upload; its pin lapses");
        }
        state.cleanup.wake();
    };
    let mut jobs = Vec::with_capacity(received.len());
    let mut answers = Vec::with_capacity(received.len());
    for file in received {
        let original = match file.staged.commit(file.format).await {
            Ok(original) => original,
            Err(e) => {
                refund().await;
                unpin().await;
                return Err(storage_error(e));
            }
        };
        let payload = ImageJob {
            original: original.key,
            filename: file.filename,
            bytes: original.bytes,
            sha256: original.sha256,
            format: file.format,
        };
        let delete_token = DeleteToken::new();
        let id = JobId::new();
        answers.push(json!({
            "id": id,
            "state": "queued",
            "filename": payload.filename,
            "bytes": payload.bytes,
            "status_url": format!("/jobs/{id}"),
            "events_url": format!("/ws?job={id}"),
            "delete_url": format!("/uploads/{id}"),
            "delete_token": delete_token.secret(),
        }));
        jobs.push(NewJob {
            id,
            content: Some(payload.sha256.clone()),
            delete_digest: Some(delete_token.digest()),
            payload: serde_json::to_value(&payload).map_err(Problem::internal)?,
            priority,
        });
    }
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    // From here a request dropped mid-way keeps its files: the enqueue may take effect though its
    // answer never comes, and a queued job must find its original. Only an enqueue known to have
    // failed lets go of them, through the pin: the sweep removes what nothing else references.
    match state.queue.enqueue_as(&jobs, subject, Some(&pin)).await {
        Ok(Ok(())) => {}
        Ok(Err(blocked)) => {
            refund().await;
            unpin().await;
            let filename = answers[blocked.index]["filename"].as_str();
            return Err(blocked_content(filename));
        }
        Err(e) => match enqueued_after_all(&state, &ids, &e).await {
            Some(true) => {
                tracing::warn!(error = %e, "the enqueue's answer was lost, but it took effect")
            }
            Some(false) => {
                refund().await;
                unpin().await;
                return Err(Problem::from(e));
            }
            None => {
                tracing::warn!(error = %e, "enqueue outcome unknown; keeping the uploads");
                return Err(Problem::unavailable(
                    "the job store did not answer in time: the upload may or may not have been \
                     accepted; try again shortly",
                ));
            }
        },
    }
    crate::telemetry::uploaded(files, bytes);
    for (id, job) in ids.iter().zip(&jobs) {
        tracing::info!(job_id = %id, subject = %caller.0.subject, content = job.content.as_deref().unwrap_or(""), "job queued");
    }
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/jobs/{}", ids[0])))
        .json(json!({ "jobs": answers })))
}

/// How long an upload's pin on its contents lasts if the upload dies before its enqueue.
const PIN_LAPSE: std::time::Duration = std::time::Duration::from_secs(600);

/// The refusal of bytes an administrator blocked.
fn blocked_content(filename: Option<&str>) -> Problem {
    let which = filename.map_or_else(|| "a file".to_owned(), |name| format!("{name:?}"));
    Problem::new(
        actix_web::http::StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
        "blocked-content",
        format!("{which} has been removed by an administrator and may not be uploaded again"),
    )
}

/// Reads a multipart body to its end through the guard: each file part streamed into staging,
/// `priority` read, other fields counted and dropped, every limit of `limits` applied. Refuses a
/// body without a file part, or with a priority other than `high` or `normal`.
pub(crate) async fn receive_parts<S>(
    headers: &HeaderMap,
    body: S,
    storage: &Storage,
    limits: &UploadSettings,
) -> Result<Received, Problem>
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
    let mut priority = Priority::Normal;
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
            let mut value = Vec::new();
            let mut bytes = 0u64;
            while let Some(chunk) = watch.next(&mut field).await {
                let chunk = chunk.map_err(refused)?;
                bytes += chunk.len() as u64;
                if name == PRIORITY_FIELD && bytes <= MAX_PRIORITY_BYTES {
                    value.extend_from_slice(&chunk);
                }
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
            if name == PRIORITY_FIELD {
                priority = parse_priority(&value, bytes)?;
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
    Ok(Received {
        files: received,
        priority,
    })
}

/// Longer than any priority's name: a longer value is refused unread.
const MAX_PRIORITY_BYTES: u64 = 16;

fn parse_priority(value: &[u8], bytes: u64) -> Result<Priority, Problem> {
    let refused = |what: String| {
        Problem::bad_request(
            "bad-priority",
            format!("the field \"priority\" {what}: send \"high\" or \"normal\""),
        )
    };
    if bytes > MAX_PRIORITY_BYTES {
        return Err(refused(format!("is {bytes} bytes long")));
    }
    let text = std::str::from_utf8(value).map_err(|_| refused("is not UTF-8".to_owned()))?;
    text.trim()
        .parse()
        .map_err(|_| refused(format!("is {:?}", text.trim())))
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
