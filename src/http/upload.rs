//! `POST /upload`: every file part (`file`, or `media` as the Node stack names it) becomes one job.
//! Each part is streamed to a temp file while it is hashed and counted, never held whole in memory;
//! its format is sniffed from its first bytes. The request is all or nothing: any bad part, or Redis
//! unreachable, removes every file this request wrote and enqueues nothing.

use std::path::PathBuf;

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::AppState;
use super::problem::Problem;
use crate::config::UploadSettings;
use crate::pipeline::{SNIFF_LEN, Sniffed, sniff};
use crate::storage::Storage;
use crate::worker::ImageJob;

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
    if content_length(&req).is_some_and(|length| length > limits.max_body_bytes) {
        return Err(body_too_large(limits));
    }
    let mut multipart = Multipart::new(req.headers(), body);
    let mut received = Received::new(&state.storage);
    let mut body_bytes = 0u64;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(malformed)?;
        let name = field.name().unwrap_or_default().to_owned();
        if !FILE_FIELDS.contains(&name.as_str()) {
            // Other form fields are allowed and ignored, but still count toward the body limit.
            while let Some(chunk) = field.next().await {
                body_bytes += chunk.map_err(malformed)?.len() as u64;
                if body_bytes > limits.max_body_bytes {
                    return Err(body_too_large(limits));
                }
            }
            continue;
        }
        if received.files.len() >= limits.max_files {
            return Err(Problem::too_large(
                "too-many-files",
                format!("at most {} files per request", limits.max_files),
            ));
        }
        let file = receive_file(&mut field, &mut received, limits, &mut body_bytes).await?;
        received.files.push(file);
    }
    if received.files.is_empty() {
        return Err(Problem::bad_request(
            "no-file",
            "the request has no file part: send multipart/form-data with a field named \"file\"",
        ));
    }
    received.store().await?;

    let payloads: Vec<serde_json::Value> = received
        .files
        .iter()
        .map(|f| serde_json::to_value(&f.job).unwrap_or_default())
        .collect();
    let ids = state
        .queue
        .enqueue_batch(&payloads)
        .await
        .map_err(Problem::from)?;
    received.keep();

    let jobs: Vec<serde_json::Value> = ids
        .iter()
        .zip(&received.files)
        .map(|(id, f)| {
            json!({
                "id": id,
                "state": "queued",
                "filename": f.job.filename,
                "bytes": f.job.bytes,
                "status_url": format!("/jobs/{id}"),
                "events_url": format!("/ws?job={id}"),
            })
        })
        .collect();
    tracing::info!(jobs = ids.len(), "upload accepted");
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/jobs/{}", ids[0])))
        .json(json!({ "jobs": jobs })))
}

/// One file of the request, in its temp file until `store`.
struct ReceivedFile {
    temp: PathBuf,
    job: ImageJob,
    /// Set by `store` when this request created the original (and so may remove it again).
    created: Option<PathBuf>,
}

/// The files of one request. Dropping it before `keep` removes every file it wrote.
struct Received<'a> {
    storage: &'a Storage,
    files: Vec<ReceivedFile>,
    /// A part being received, not yet in `files`.
    partial: Option<PathBuf>,
    kept: bool,
}

impl<'a> Received<'a> {
    fn new(storage: &'a Storage) -> Self {
        Self {
            storage,
            files: Vec::new(),
            partial: None,
            kept: false,
        }
    }

    /// Moves each temp file to its content-addressed place.
    async fn store(&mut self) -> Result<(), Problem> {
        for file in &mut self.files {
            let path = self.storage.path(&file.job.original);
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(Problem::internal)?;
            }
            let existed = tokio::fs::try_exists(&path).await.unwrap_or(false);
            tokio::fs::rename(&file.temp, &path)
                .await
                .map_err(Problem::internal)?;
            if !existed {
                file.created = Some(path);
            }
        }
        Ok(())
    }

    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Received<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let paths = self.partial.iter().chain(self.files.iter().flat_map(|f| {
            // Before `store` the data is in the temp file; after, in the original it created.
            std::iter::once(&f.temp).chain(f.created.iter())
        }));
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Streams one part to a temp file, hashing and counting it, sniffing its first bytes.
async fn receive_file(
    field: &mut Field,
    received: &mut Received<'_>,
    limits: &UploadSettings,
    body_bytes: &mut u64,
) -> Result<ReceivedFile, Problem> {
    let filename = field
        .content_disposition()
        .and_then(|cd| cd.get_filename())
        .map(|name| name.chars().take(MAX_FILENAME).collect::<String>());
    let temp = received.storage.temp_upload();
    received.partial = Some(temp.clone());
    let mut out = tokio::fs::File::create(&temp)
        .await
        .map_err(Problem::internal)?;
    let mut hasher = Sha256::new();
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_LEN);
    let mut format = None;
    let mut bytes = 0u64;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(malformed)?;
        bytes += chunk.len() as u64;
        *body_bytes += chunk.len() as u64;
        if bytes > limits.max_file_bytes {
            return Err(Problem::too_large(
                "file-too-large",
                format!(
                    "{} is larger than the limit of {}",
                    filename.as_deref().unwrap_or("the file"),
                    in_words(limits.max_file_bytes)
                ),
            ));
        }
        if *body_bytes > limits.max_body_bytes {
            return Err(body_too_large(limits));
        }
        if format.is_none() {
            let wanted = SNIFF_LEN - head.len();
            head.extend_from_slice(&chunk[..wanted.min(chunk.len())]);
            if head.len() == SNIFF_LEN {
                format = Some(check_format(&head, filename.as_deref())?);
            }
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(Problem::internal)?;
    }
    if bytes == 0 {
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
    // The 202 promises the file survives a crash: it is on disk before the job exists.
    out.sync_all().await.map_err(Problem::internal)?;
    drop(out);
    received.partial = None;
    let sha256 = hex::encode(hasher.finalize());
    Ok(ReceivedFile {
        temp,
        job: ImageJob {
            original: Storage::original_key(&sha256, format),
            filename,
            bytes,
            sha256,
            format,
        },
        created: None,
    })
}

fn check_format(
    head: &[u8],
    filename: Option<&str>,
) -> Result<crate::pipeline::ImageFormat, Problem> {
    match sniff(head) {
        Sniffed::Image(format) => Ok(format),
        Sniffed::Other { mime } => {
            let mut problem = Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-type",
                format!(
                    "{} looks like {mime}; accepted are JPEG, PNG, GIF, WebP, BMP and TIFF images",
                    filename.unwrap_or("the file")
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

fn malformed(e: MultipartError) -> Problem {
    Problem::bad_request(
        "malformed-multipart",
        format!("the body is not valid multipart/form-data: {e}"),
    )
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
