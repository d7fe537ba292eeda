//! What a PNG says of its colours without an ICC profile: its `gAMA` (the encoding gamma) and
//! `cHRM` (primaries and white point) chunks, read from the chunks before the image data. The
//! `image` decoder does not apply them; `colour.rs` does, unless an `sRGB`, `iCCP` or `cICP`
//! chunk overrides them, as the PNG specification says (a cICP-tagged image is then taken as sRGB:
//! its coding points are not read yet).

use std::io::{Read, Seek, SeekFrom};

/// The colour chunks of a PNG, as stored (values times 100 000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PngColour {
    pub gamma: Option<u32>,
    /// White x, y; red x, y; green x, y; blue x, y.
    pub chromaticities: Option<[u32; 8]>,
    /// An `sRGB`, `iCCP` or `cICP` chunk is present: those take precedence.
    pub overridden: bool,
}

/// Chunks looked at before giving up: the colour chunks come right after IHDR.
const MAX_CHUNKS: usize = 64;

/// Reads the colour chunks from `reader` (at the start of a PNG), leaving it at the start again.
/// A file that is not a well-formed PNG up to its first IDAT reads as having none (the decoder
/// then says what is wrong with it); only failing to go back to the start is an error.
pub(crate) fn colour_chunks(reader: &mut (impl Read + Seek)) -> std::io::Result<PngColour> {
    let found = read_chunks(reader).unwrap_or_default();
    reader.rewind()?;
    Ok(found)
}

fn read_chunks(reader: &mut (impl Read + Seek)) -> std::io::Result<PngColour> {
    let mut found = PngColour::default();
    reader.seek(SeekFrom::Start(8))?;
    for _ in 0..MAX_CHUNKS {
        let mut head = [0u8; 8];
        if reader.read_exact(&mut head).is_err() {
            break;
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = &head[4..8];
        match kind {
            b"IDAT" | b"IEND" => break,
            b"sRGB" | b"iCCP" | b"cICP" => found.overridden = true,
            b"gAMA" if len == 4 => found.gamma = Some(read_u32s::<1>(reader)?[0]),
            b"cHRM" if len == 32 => found.chromaticities = Some(read_u32s::<8>(reader)?),
            _ => {}
        }
        let read = match kind {
            b"gAMA" if len == 4 => 4,
            b"cHRM" if len == 32 => 32,
            _ => 0,
        };
        // The rest of the data, and the CRC.
        reader.seek_relative(i64::from(len) - read + 4)?;
    }
    Ok(found)
}

fn read_u32s<const N: usize>(reader: &mut impl Read) -> std::io::Result<[u32; N]> {
    let mut values = [0u32; N];
    for value in &mut values {
        let mut bytes = [0u8; 4];
        reader.read_exact(&mut bytes)?;
        *value = u32::from_be_bytes(bytes);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::pipeline::tests::fixtures::png_chunk;

    fn png_with(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]));
        for chunk in chunks {
            png.extend(chunk);
        }
        png.extend(png_chunk(b"IDAT", &[]));
        png.extend(png_chunk(b"gAMA", &100_000u32.to_be_bytes()));
        png
    }

    #[test]
    fn gamma_and_chromaticities_are_read_up_to_the_image_data() {
        let chrm: Vec<u8> = [31270u32, 32900, 64000, 33000, 21000, 71000, 15000, 6000]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let png = png_with(&[
            png_chunk(b"tEXt", b"Comment\0hello"),
            png_chunk(b"gAMA", &45455u32.to_be_bytes()),
            png_chunk(b"cHRM", &chrm),
        ]);
        let mut reader = Cursor::new(png);
        let found = colour_chunks(&mut reader).unwrap();
        assert_eq!(found.gamma, Some(45455), "the gAMA after IDAT is not read");
        assert_eq!(found.chromaticities.unwrap()[2], 64000);
        assert!(!found.overridden);
        assert_eq!(reader.position(), 0);
        let srgb = png_with(&[png_chunk(b"sRGB", &[0])]);
        assert!(colour_chunks(&mut Cursor::new(srgb)).unwrap().overridden);
    }

    #[test]
    fn a_cut_or_malformed_png_reads_as_having_no_colour_chunks() {
        let png = png_with(&[png_chunk(b"gAMA", &45455u32.to_be_bytes())]);
        // Signature, IHDR, then the gAMA chunk's length, type and value (its CRC may be cut).
        let gama_end = 8 + 25 + 8 + 4;
        for cut in 0..png.len() {
            let found = colour_chunks(&mut Cursor::new(&png[..cut])).unwrap();
            let expected = (cut >= gama_end).then_some(45455);
            assert_eq!(found.gamma, expected, "cut at {cut}");
        }
        let mut huge = png.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            colour_chunks(&mut Cursor::new(huge)).unwrap(),
            PngColour::default()
        );
    }
}
