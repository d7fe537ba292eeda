//! The little pixdrop reads of EXIF itself: whether a photo says where it was taken. Variants never
//! carry EXIF (the WebP encoder writes none), so no location or camera serial leaves through them;
//! the job's result says whether the original had a location, as the original keeps its bytes.
//!
//! The block comes from the file, so every offset is checked: a bad one means "no location".

/// Whether the EXIF block (a TIFF structure, optionally after `Exif\0\0`) has a GPS position:
/// a GPS IFD holding a latitude or a longitude.
pub(crate) fn has_location(exif: &[u8]) -> bool {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let Some(order) = ByteOrder::of(tiff) else {
        return false;
    };
    let Some(ifd0) = order.u32(tiff, 4) else {
        return false;
    };
    const GPS_IFD: u16 = 0x8825;
    const GPS_LATITUDE: u16 = 0x0002;
    const GPS_LONGITUDE: u16 = 0x0004;
    let Some(gps) = entry_value(tiff, order, ifd0 as usize, GPS_IFD) else {
        return false;
    };
    [GPS_LATITUDE, GPS_LONGITUDE]
        .iter()
        .any(|tag| entry_value(tiff, order, gps as usize, *tag).is_some())
}

#[derive(Clone, Copy)]
enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn of(tiff: &[u8]) -> Option<Self> {
        match tiff.get(..4)? {
            [b'I', b'I', 42, 0] => Some(Self::Little),
            [b'M', b'M', 0, 42] => Some(Self::Big),
            _ => None,
        }
    }

    fn u16(self, data: &[u8], at: usize) -> Option<u16> {
        let bytes: [u8; 2] = data.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Self::Little => u16::from_le_bytes(bytes),
            Self::Big => u16::from_be_bytes(bytes),
        })
    }

    fn u32(self, data: &[u8], at: usize) -> Option<u32> {
        let bytes: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Self::Little => u32::from_le_bytes(bytes),
            Self::Big => u32::from_be_bytes(bytes),
        })
    }
}

/// The value (or offset) field of the entry `tag` in the IFD at `ifd`.
fn entry_value(tiff: &[u8], order: ByteOrder, ifd: usize, tag: u16) -> Option<u32> {
    let count = order.u16(tiff, ifd)?;
    (0..usize::from(count)).find_map(|i| {
        let entry = ifd.checked_add(2)?.checked_add(i.checked_mul(12)?)?;
        (order.u16(tiff, entry)? == tag).then(|| order.u32(tiff, entry + 8))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF block with IFD0 holding `ifd0` entries and, when `gps` is given, a GPS
    /// IFD holding those tags.
    fn exif_block(gps: Option<&[u16]>) -> Vec<u8> {
        let mut tiff = b"II*\0".to_vec();
        tiff.extend(8u32.to_le_bytes());
        // IFD0: one entry (Orientation = 1), or two with the GPS pointer.
        let entries: u16 = if gps.is_some() { 2 } else { 1 };
        tiff.extend(entries.to_le_bytes());
        tiff.extend(0x0112u16.to_le_bytes());
        tiff.extend(3u16.to_le_bytes());
        tiff.extend(1u32.to_le_bytes());
        tiff.extend(1u32.to_le_bytes());
        let gps_at = 8 + 2 + 12 * u32::from(entries) + 4;
        if gps.is_some() {
            tiff.extend(0x8825u16.to_le_bytes());
            tiff.extend(4u16.to_le_bytes());
            tiff.extend(1u32.to_le_bytes());
            tiff.extend(gps_at.to_le_bytes());
        }
        tiff.extend(0u32.to_le_bytes());
        if let Some(tags) = gps {
            tiff.extend((tags.len() as u16).to_le_bytes());
            for tag in tags {
                tiff.extend(tag.to_le_bytes());
                tiff.extend(5u16.to_le_bytes());
                tiff.extend(3u32.to_le_bytes());
                tiff.extend(0u32.to_le_bytes());
            }
            tiff.extend(0u32.to_le_bytes());
        }
        tiff
    }

    #[test]
    fn a_gps_position_is_found_and_its_absence_too() {
        assert!(has_location(&exif_block(Some(&[0x0001, 0x0002]))));
        let mut with_header = b"Exif\0\0".to_vec();
        with_header.extend(exif_block(Some(&[0x0004])));
        assert!(has_location(&with_header));
        assert!(!has_location(&exif_block(None)));
        assert!(
            !has_location(&exif_block(Some(&[0x0007]))),
            "a time is no position"
        );
    }

    #[test]
    fn hostile_blocks_read_as_no_location_without_panicking() {
        let good = exif_block(Some(&[0x0002]));
        for cut in 0..good.len() {
            let _ = has_location(&good[..cut]);
        }
        let mut huge_offsets = good.clone();
        huge_offsets[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!has_location(&huge_offsets));
        assert!(!has_location(b""));
        assert!(!has_location(b"MM\0*\xff\xff\xff\xff"));
    }
}
