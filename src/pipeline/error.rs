//! Everything that can go wrong in the pipeline, each with a stable code for clients and a verdict
//! on whether retrying could help.
//!
//! Messages are written for the person who uploaded the photo; codes are for programs and never
//! change once published.

use std::error::Error as _;
use std::io;

use super::format::{ImageFormat, accepted_in_words, describe};
use super::limits::megapixels;

/// Which size limit an image broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    Pixels {
        max: u64,
    },
    Width {
        max: u32,
    },
    Height {
        max: u32,
    },
    /// The decoder's own allocation guard, for data that asks for more memory than its
    /// dimensions explain (huge metadata chunks, say).
    Memory,
}

impl SizeLimit {
    /// `pixels`, `width`, `height` or `memory`, for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pixels { .. } => "pixels",
            Self::Width { .. } => "width",
            Self::Height { .. } => "height",
            Self::Memory => "memory",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Not one of the formats we accept; `detected` is the media type [`super::sniff`] named.
    #[error(
        "the file is {}{}, which we don't accept; upload a {} image",
        describe(detected),
        mime_suffix(detected),
        accepted_in_words("or")
    )]
    UnsupportedFormat { detected: &'static str },

    /// An accepted format using a feature the decoder lacks (an exotic TIFF compression, say).
    #[error("this {} uses a feature we cannot decode ({detail})", format.label())]
    UnsupportedFeature { format: ImageFormat, detail: String },

    #[error("the {} file is damaged and cannot be decoded ({detail})", format.label())]
    Corrupt { format: ImageFormat, detail: String },

    #[error(
        "the {} file is incomplete: it ends before the image does (was the upload cut short?)",
        format.label()
    )]
    Truncated { format: ImageFormat },

    /// `width` and `height` are as displayed (after EXIF orientation); both are 0 for
    /// [`SizeLimit::Memory`] when the decoder refused before saying.
    #[error("{}", too_large_message(*width, *height, *limit))]
    TooLarge {
        width: u32,
        height: u32,
        limit: SizeLimit,
    },

    /// Resizing or WebP encoding failed. Only running out of memory is worth a retry: the
    /// encoder is deterministic otherwise.
    #[error("could not make the '{variant}' variant: {reason}")]
    Encode {
        variant: String,
        reason: String,
        transient: bool,
    },

    /// The caller stopped the run (see [`super::StopFlag`]).
    #[error("processing was stopped")]
    Stopped,

    /// Reading the source failed (the caller's storage, not the image, is at fault).
    #[error("could not read the image: {source}")]
    Read {
        #[source]
        source: io::Error,
    },

    /// The sink refused a variant (see [`super::VariantSink`]).
    #[error("could not store the '{variant}' variant: {source}")]
    Store {
        variant: String,
        #[source]
        source: io::Error,
    },
}

impl PipelineError {
    /// A stable kebab-case identifier, safe to send to clients and to match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat { .. } | Self::UnsupportedFeature { .. } => {
                "unsupported-format"
            }
            Self::Corrupt { .. } => "corrupt-image",
            Self::Truncated { .. } => "truncated-image",
            Self::TooLarge { .. } => "image-too-large",
            Self::Encode { .. } => "encode-failed",
            Self::Read { .. } | Self::Store { .. } => "io-error",
            Self::Stopped => "stopped",
        }
    }

    /// True when the same input would fail the same way again, so the job should fail for good
    /// rather than be retried. The upload itself is at fault, or the encoder deterministically is;
    /// I/O trouble (a full disk, a flaky mount) may pass.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::UnsupportedFormat { .. }
            | Self::UnsupportedFeature { .. }
            | Self::Corrupt { .. }
            | Self::Truncated { .. }
            | Self::TooLarge { .. } => true,
            Self::Encode { transient, .. } => !transient,
            Self::Read { .. } | Self::Store { .. } | Self::Stopped => false,
        }
    }

    /// For `map_err`: reading the source failed.
    pub(crate) fn read(source: io::Error) -> Self {
        Self::Read { source }
    }

    /// Sorts a decoder's error into ours.
    pub(crate) fn from_decoder(format: ImageFormat, err: image::ImageError) -> Self {
        use image::ImageError as E;
        if ends_early(&err) {
            return Self::Truncated { format };
        }
        match err {
            E::IoError(e) => Self::read(e),
            E::Limits(_) => Self::TooLarge {
                width: 0,
                height: 0,
                limit: SizeLimit::Memory,
            },
            E::Unsupported(e) => Self::UnsupportedFeature {
                format,
                detail: e.to_string(),
            },
            e @ (E::Decoding(_) | E::Parameter(_) | E::Encoding(_)) => Self::Corrupt {
                format,
                detail: e.to_string(),
            },
        }
    }
}

/// Decoders report a file that stops mid-image as an unexpected end of file, sometimes wrapped
/// in their own error type; look down the whole chain.
fn ends_early(err: &image::ImageError) -> bool {
    // `ImageError::source` skips its own I/O variant, so look at that one directly.
    if let image::ImageError::IoError(e) = err {
        return e.kind() == io::ErrorKind::UnexpectedEof;
    }
    let mut next = err.source();
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::UnexpectedEof
        {
            return true;
        }
        next = e.source();
    }
    false
}

fn mime_suffix(mime: &str) -> String {
    match mime {
        "application/octet-stream" | "inode/x-empty" => String::new(),
        _ => format!(" ({mime})"),
    }
}

fn too_large_message(width: u32, height: u32, limit: SizeLimit) -> String {
    match limit {
        SizeLimit::Pixels { max } => format!(
            "image is {width}x{height} ({} megapixels); the limit is {} megapixels",
            megapixels(u64::from(width) * u64::from(height)),
            megapixels(max)
        ),
        SizeLimit::Width { max } => format!("image is {width} pixels wide; the limit is {max}"),
        SizeLimit::Height { max } => format!("image is {height} pixels tall; the limit is {max}"),
        SizeLimit::Memory => {
            "decoding this image would need more memory than the server allows".to_string()
        }
    }
}
