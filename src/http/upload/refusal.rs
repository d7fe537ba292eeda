//! The answers an upload is refused with, each a problem with its stable code.

use actix_multipart::MultipartError;
use actix_web::http::StatusCode;

use crate::http::AppState;
use crate::http::body::{BodyWatch, Cut};
use crate::http::problem::Problem;
use crate::http::settings::UploadSettings;

pub(super) fn body_too_large(limits: &UploadSettings) -> Problem {
    Problem::too_large(
        "body-too-large",
        format!(
            "the request body is larger than the limit of {}",
            in_words(limits.max_body_bytes)
        ),
    )
}

/// A size limit as people read it, with the exact count: `50 MiB (52428800 bytes)`.
pub(super) fn in_words(bytes: u64) -> String {
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
pub(super) fn refusal(e: MultipartError, watch: &BodyWatch, limits: &UploadSettings) -> Problem {
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
pub(super) fn check_free_space(state: &AppState, incoming: u64) -> Result<(), Problem> {
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
pub(super) fn storage_error(e: std::io::Error) -> Problem {
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
