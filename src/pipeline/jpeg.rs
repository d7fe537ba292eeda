//! Whether a JPEG file is whole: does its data reach the end-of-image marker?
//!
//! The JPEG decoder is lenient: when the data stops mid-scan it fills the rest of the picture
//! with grey and reports success. A half-uploaded photo must fail instead, with a code that says
//! so, so we walk the marker structure ourselves. It is a streaming scan over bytes already in the
//! page cache, a few milliseconds for a large photo, and it allocates nothing.

use std::io::{self, BufRead, Read};

const SOS: u8 = 0xDA;
const EOI: u8 = 0xD9;

/// True if the stream, read from its start, reaches an EOI marker after the segments and scans
/// before it. Trailing bytes after EOI are fine (cameras append things). Malformed structure
/// counts as whole: telling a broken file from a cut one is the decoder's job.
pub(crate) fn reaches_end_marker(mut r: impl BufRead) -> io::Result<bool> {
    let mut pending = None;
    loop {
        let marker = match pending.take() {
            Some(marker) => marker,
            None => match next_marker(&mut r)? {
                Some(marker) => marker,
                None => return Ok(false),
            },
        };
        match marker {
            EOI => return Ok(true),
            // Markers that stand alone, without a length: SOI, TEM, RST0-7 (and a stray 0x00).
            0xD8 | 0x01 | 0xD0..=0xD7 | 0x00 => {}
            _ => {
                let mut len = [0; 2];
                if !read_all(&mut r, &mut len)? {
                    return Ok(false);
                }
                let Some(body) = u16::from_be_bytes(len).checked_sub(2) else {
                    return Ok(true);
                };
                if io::copy(&mut r.by_ref().take(u64::from(body)), &mut io::sink())?
                    < u64::from(body)
                {
                    return Ok(false);
                }
                if marker == SOS {
                    match skip_entropy_coded_data(&mut r)? {
                        Some(marker) => pending = Some(marker),
                        None => return Ok(false),
                    }
                }
            }
        }
    }
}

/// Finds the next marker byte: skips to a 0xFF (decoders skip stray bytes between segments too),
/// then past any 0xFF fill bytes. `None` at end of data.
fn next_marker(r: &mut impl BufRead) -> io::Result<Option<u8>> {
    let mut seen_ff = false;
    let mut byte = [0; 1];
    loop {
        if !read_all(r, &mut byte)? {
            return Ok(None);
        }
        match (seen_ff, byte[0]) {
            (_, 0xFF) => seen_ff = true,
            (true, marker) => return Ok(Some(marker)),
            (false, _) => {}
        }
    }
}

/// Skips a scan's compressed data, which ends at the first marker that is neither a stuffed zero
/// (0xFF00) nor a restart marker. Returns that marker, or `None` at end of data.
fn skip_entropy_coded_data(r: &mut impl BufRead) -> io::Result<Option<u8>> {
    let mut after_ff = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        let mut found = None;
        let mut i = 0;
        while i < buf.len() {
            if after_ff {
                let byte = buf[i];
                i += 1;
                match byte {
                    0xFF => {}
                    0x00 | 0xD0..=0xD7 => after_ff = false,
                    marker => {
                        found = Some(marker);
                        break;
                    }
                }
            } else {
                match buf[i..].iter().position(|&b| b == 0xFF) {
                    Some(at) => {
                        i += at + 1;
                        after_ff = true;
                    }
                    None => i = buf.len(),
                }
            }
        }
        r.consume(i);
        if found.is_some() {
            return Ok(found);
        }
    }
}

/// `read_exact` that reports a short read as `false` rather than an error.
fn read_all(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an APP0, two scans (as in a progressive JPEG) with stuffed bytes and a restart
    /// marker in their data, then EOI.
    fn whole_jpeg_structure() -> Vec<u8> {
        let mut data = vec![0xFF, 0xD8];
        data.extend([0xFF, 0xE0, 0x00, 0x06, b'J', b'F', b'I', b'F']);
        for _ in 0..2 {
            data.extend([0xFF, SOS, 0x00, 0x04, 0x01, 0x02]);
            data.extend([
                0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0x00, 0x78,
            ]);
        }
        data.extend([0xFF, EOI]);
        data
    }

    #[test]
    fn a_jpeg_that_reaches_its_end_marker_is_whole() {
        // Proves stuffed bytes, restart markers, fill bytes and several scans are walked past.
        assert!(reaches_end_marker(&whole_jpeg_structure()[..]).unwrap());
    }

    #[test]
    fn bytes_after_the_end_marker_do_not_matter() {
        // Proves trailing data some cameras append is not mistaken for anything.
        let mut data = whole_jpeg_structure();
        data.extend(b"trailing thumbnail or padding");
        assert!(reaches_end_marker(&data[..]).unwrap());
    }

    #[test]
    fn a_jpeg_cut_anywhere_before_its_end_marker_is_not_whole() {
        // Proves every truncation point, in a header, a length or scan data, is caught.
        let data = whole_jpeg_structure();
        for cut in 0..data.len() {
            assert!(!reaches_end_marker(&data[..cut]).unwrap(), "cut at {cut}");
        }
    }

    #[test]
    fn the_scan_works_across_small_buffer_boundaries() {
        // Proves a 0xFF at the end of one buffer and its marker at the start of the next are paired.
        let data = whole_jpeg_structure();
        let reader = io::BufReader::with_capacity(1, &data[..]);
        assert!(reaches_end_marker(reader).unwrap());
    }
}
