//! What a file is, judged only by its first bytes: the image formats we accept, and a name for
//! everything else so an error can tell the user what they actually sent.
//!
//! Filenames and Content-Type headers are client claims; the magic bytes are not.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How many leading bytes [`sniff`] looks at. Fewer are fine (a short file is sniffed as far as it
/// goes); more are ignored.
pub const SNIFF_LEN: usize = 32;

/// An image format the pipeline accepts and can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
    Tiff,
}

impl ImageFormat {
    /// Every format pixdrop accepts.
    pub const ALL: [Self; 6] = [
        Self::Jpeg,
        Self::Png,
        Self::Gif,
        Self::WebP,
        Self::Bmp,
        Self::Tiff,
    ];

    /// The file name extensions it usually comes with: only for hints to clients, since pixdrop
    /// itself sniffs the bytes.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Jpeg => &["jpg", "jpeg", "jfif"],
            Self::Png => &["png"],
            Self::Gif => &["gif"],
            Self::WebP => &["webp"],
            Self::Bmp => &["bmp"],
            Self::Tiff => &["tif", "tiff"],
        }
    }

    /// The extension pixdrop stores it under.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::WebP => "webp",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
        }
    }

    /// The IANA media type, e.g. `image/jpeg`.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::WebP => "image/webp",
            Self::Bmp => "image/bmp",
            Self::Tiff => "image/tiff",
        }
    }

    /// A short lowercase name for logs, metrics and JSON: `jpeg`, `png`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::WebP => "webp",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
        }
    }

    /// The name people know it by, for messages shown to users: `JPEG`, `WebP`, ...
    pub fn label(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Gif => "GIF",
            Self::WebP => "WebP",
            Self::Bmp => "BMP",
            Self::Tiff => "TIFF",
        }
    }

    pub(crate) fn to_image_crate(self) -> image::ImageFormat {
        match self {
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Png => image::ImageFormat::Png,
            Self::Gif => image::ImageFormat::Gif,
            Self::WebP => image::ImageFormat::WebP,
            Self::Bmp => image::ImageFormat::Bmp,
            Self::Tiff => image::ImageFormat::Tiff,
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every accepted format by its label, as a list in words: `JPEG, PNG, GIF, WebP, BMP or TIFF`.
pub fn accepted_in_words(last_joiner: &str) -> String {
    let labels: Vec<&str> = ImageFormat::ALL.iter().map(|f| f.label()).collect();
    match labels.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} {last_joiner} {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The verdict of [`sniff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A format we accept. The header may still turn out to be damaged: decoding decides that.
    Image(ImageFormat),
    /// Anything else, named by media type (`application/pdf`, `image/heic`, ...), or
    /// `application/octet-stream` when we cannot tell.
    Other { mime: &'static str },
}

impl Sniffed {
    /// The media type of what was detected, accepted or not.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Image(format) => format.mime(),
            Self::Other { mime } => mime,
        }
    }
}

/// Names the format of a file from its first bytes (see [`SNIFF_LEN`]).
pub fn sniff(first_bytes: &[u8]) -> Sniffed {
    let head = &first_bytes[..first_bytes.len().min(SNIFF_LEN)];
    match image_format(head) {
        Some(format) => Sniffed::Image(format),
        None => Sniffed::Other {
            mime: other_mime(head),
        },
    }
}

fn image_format(head: &[u8]) -> Option<ImageFormat> {
    let format = if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ImageFormat::Jpeg
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        ImageFormat::Png
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        ImageFormat::Gif
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        ImageFormat::WebP
    } else if is_bmp(head) {
        ImageFormat::Bmp
    } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]
        .iter()
        .any(|m| head.starts_with(*m))
    {
        // Classic TIFF and BigTIFF, in either byte order.
        ImageFormat::Tiff
    } else {
        return None;
    };
    Some(format)
}

/// "BM" alone is two bytes of ASCII that plenty of text starts with, so also require the size of
/// the header that follows the file header to be one that some BMP version actually uses.
fn is_bmp(head: &[u8]) -> bool {
    let Some(size) = head.get(14..18) else {
        return false;
    };
    let dib_header_size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
    head.starts_with(b"BM") && [12, 16, 40, 52, 56, 64, 108, 124].contains(&dib_header_size)
}

fn other_mime(head: &[u8]) -> &'static str {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"PK\x05\x06", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"Rar!\x1a\x07", "application/vnd.rar"),
        (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
        (b"8BPS", "image/vnd.adobe.photoshop"),
        (b"\xff\x0a", "image/jxl"),
        (b"\0\0\0\x0cJXL \r\n\x87\n", "image/jxl"),
        (b"ID3", "audio/mpeg"),
        (b"\x7fELF", "application/x-executable"),
    ];
    if head.is_empty() {
        return "inode/x-empty";
    }
    if let Some((_, mime)) = SIGNATURES.iter().find(|(magic, _)| head.starts_with(magic)) {
        return mime;
    }
    if head.get(4..8) == Some(b"ftyp") {
        return iso_media_mime(head);
    }
    if head.starts_with(b"RIFF") {
        match head.get(8..12) {
            Some(b"WAVE") => return "audio/wav",
            Some(b"AVI ") => return "video/x-msvideo",
            _ => {}
        }
    }
    text_mime(head).unwrap_or("application/octet-stream")
}

/// HEIC, AVIF and MP4 share the ISO media `ftyp` box; its major and compatible brands tell them
/// apart. A phone's HEIC photo is the most likely "image" we refuse, so name it precisely. `head`
/// is whatever the client sent: its box length may be anything, and the brands may be cut short.
fn iso_media_mime(head: &[u8]) -> &'static str {
    let Some(major) = head.get(8..12) else {
        return "application/octet-stream";
    };
    let box_len = head
        .get(0..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    // Minor version at 12..16, compatible brands from 16 to the box's end (or the bytes we have).
    let compatible = head.get(16..box_len.min(head.len())).unwrap_or(&[]);
    let brands: Vec<&[u8]> = std::iter::once(major)
        .chain(compatible.chunks_exact(4))
        .collect();
    let any = |wanted: &[&[u8]]| brands.iter().any(|b| wanted.contains(b));
    if any(&[b"avif", b"avis"]) {
        "image/avif"
    } else if any(&[b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"]) {
        "image/heic"
    } else if any(&[b"mif1", b"msf1"]) {
        "image/heif"
    } else if major == b"qt  " {
        "video/quicktime"
    } else {
        "video/mp4"
    }
}

/// Markup is named for what it is (an SVG is an image, just not one we rasterise); anything else
/// that is valid UTF-8 without control characters is plain text.
fn text_mime(head: &[u8]) -> Option<&'static str> {
    let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        // A multi-byte character cut off by the sniff window is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&body[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
    {
        return None;
    }
    let start = text.trim_start().to_ascii_lowercase();
    let mime = if start.starts_with("<svg") {
        "image/svg+xml"
    } else if start.starts_with("<?xml") {
        "text/xml"
    } else if ["<!doctype html", "<html", "<head", "<body"]
        .iter()
        .any(|tag| start.starts_with(tag))
    {
        "text/html"
    } else {
        "text/plain"
    };
    Some(mime)
}

/// A phrase naming what a media type is, for messages to users ("a PDF document").
pub(crate) fn describe(mime: &str) -> &'static str {
    match mime {
        "application/pdf" => "a PDF document",
        "application/zip" => "a ZIP archive",
        "application/gzip" => "a gzip archive",
        "application/vnd.rar" => "a RAR archive",
        "application/x-7z-compressed" => "a 7-Zip archive",
        "image/vnd.adobe.photoshop" => "a Photoshop document",
        "image/jxl" => "a JPEG XL image",
        "image/heic" | "image/heif" => "a HEIC/HEIF photo",
        "image/avif" => "an AVIF image",
        "video/mp4" | "video/quicktime" | "video/x-msvideo" => "a video",
        "audio/mpeg" | "audio/wav" => "an audio file",
        "application/x-executable" => "a program",
        "image/svg+xml" => "an SVG drawing",
        "text/html" => "a web page",
        "text/xml" => "an XML document",
        "text/plain" => "a text file",
        "inode/x-empty" => "an empty file",
        _ => "not an image we recognise",
    }
}
