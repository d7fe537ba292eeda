//! One file part of an upload, streamed into storage's staging: sniffed from its first bytes and
//! held to the size limits as it arrives.

use actix_multipart::{Field, MultipartError};
use actix_web::http::StatusCode;

use super::refusal::{in_words, storage_error};
use crate::http::body::BodyWatch;
use crate::http::problem::Problem;
use crate::http::settings::UploadSettings;
use crate::pipeline::{ImageFormat, SNIFF_LEN, Sniffed, accepted_in_words, sniff};
use crate::storage::{StagedUpload, Storage};

/// Longest client filename we keep (it is data, shown back to the client).
const MAX_FILENAME: usize = 255;

/// One file part, received whole into staging.
pub(crate) struct ReceivedFile {
    pub staged: StagedUpload,
    pub filename: Option<String>,
    pub format: ImageFormat,
}

/// Streams one part into staging, sniffing its first bytes and holding it to the size limits.
pub(super) async fn receive_file(
    field: &mut Field,
    watch: &BodyWatch,
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
    while let Some(chunk) = watch.next(field).await {
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
