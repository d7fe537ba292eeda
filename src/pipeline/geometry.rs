//! Where each variant's pixels come from and how big it ends up: the crop rectangle in the
//! source and the output size, for both fits. Pure arithmetic, so it is tested on its own.
//!
//! Sizes use exact integer arithmetic; only a cover crop that is then scaled down needs
//! fractional edges, and the resizer takes those as they are.

use super::spec::Fit;

/// A rectangle of the source, in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Crop {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// What to cut out of a `source` image and what size to make it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    pub crop: Crop,
    pub width: u32,
    pub height: u32,
}

impl Plan {
    /// True when the output is the source pixel for pixel, so resizing can be skipped.
    pub fn is_identity(&self, src_width: u32, src_height: u32) -> bool {
        self.width == src_width
            && self.height == src_height
            && self.crop == whole(src_width, src_height)
    }
}

/// Plans a `box_width` x `box_height` variant of a `src_width` x `src_height` image. Never
/// scales up: an image smaller than the box keeps its pixels.
pub(crate) fn plan(
    src_width: u32,
    src_height: u32,
    fit: Fit,
    box_width: u32,
    box_height: u32,
) -> Plan {
    let (w, h) = (u64::from(src_width), u64::from(src_height));
    let (bw, bh) = (u64::from(box_width), u64::from(box_height));
    // Comparing w/h with bw/bh without division: is the source wider than the box's shape?
    let wider_than_box = w * bh > h * bw;
    match fit {
        Fit::Inside if w <= bw && h <= bh => Plan {
            crop: whole(src_width, src_height),
            width: src_width,
            height: src_height,
        },
        Fit::Inside => {
            let (width, height) = if wider_than_box {
                (bw, rounded_ratio(h, bw, w))
            } else {
                (rounded_ratio(w, bh, h), bh)
            };
            Plan {
                crop: whole(src_width, src_height),
                width: side(width),
                height: side(height),
            }
        }
        Fit::Cover => {
            // The largest centred rectangle of the box's shape: full height if the source is
            // wider than the box, full width otherwise.
            let (crop_w, crop_h) = if wider_than_box {
                (h as f64 * bw as f64 / bh as f64, h as f64)
            } else {
                (w as f64, w as f64 * bh as f64 / bw as f64)
            };
            let fills_box = if wider_than_box { h >= bh } else { w >= bw };
            if fills_box {
                let crop = Crop {
                    left: (w as f64 - crop_w) / 2.0,
                    top: (h as f64 - crop_h) / 2.0,
                    width: crop_w,
                    height: crop_h,
                };
                return Plan {
                    crop,
                    width: box_width,
                    height: box_height,
                };
            }
            // Too small to fill the box: cut whole pixels at scale 1, so the copy stays sharp.
            let (width, height) = if wider_than_box {
                (rounded_ratio(h, bw, bh).min(w), h)
            } else {
                (w, rounded_ratio(w, bh, bw).min(h))
            };
            let (width, height) = (side(width), side(height));
            Plan {
                crop: Crop {
                    left: f64::from((src_width - width) / 2),
                    top: f64::from((src_height - height) / 2),
                    width: f64::from(width),
                    height: f64::from(height),
                },
                width,
                height,
            }
        }
    }
}

pub(crate) fn whole(width: u32, height: u32) -> Crop {
    Crop {
        left: 0.0,
        top: 0.0,
        width: f64::from(width),
        height: f64::from(height),
    }
}

/// `a * b / c`, rounded to nearest; in u128 so no side and box combination can overflow.
fn rounded_ratio(a: u64, b: u64, c: u64) -> u64 {
    let (a, b, c) = (u128::from(a), u128::from(b), u128::from(c));
    u64::try_from((2 * a * b + c) / (2 * c)).unwrap_or(u64::MAX)
}

/// An output side: at least one pixel (a 10000x1 strip still yields a 320x1 thumb), and it fits
/// a u32 because it never exceeds a source or box side.
fn side(n: u64) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(p: Plan) -> (u32, u32) {
        (p.width, p.height)
    }

    #[test]
    fn inside_scales_a_landscape_photo_to_the_box_width() {
        // Proves the long side meets the box and the aspect ratio is kept, rounded to nearest.
        assert_eq!(size(plan(4000, 3000, Fit::Inside, 320, 320)), (320, 240));
        assert_eq!(size(plan(3000, 4000, Fit::Inside, 320, 320)), (240, 320));
        assert_eq!(size(plan(1000, 333, Fit::Inside, 100, 100)), (100, 33));
    }

    #[test]
    fn inside_never_upscales_an_image_smaller_than_the_box() {
        // Proves small images keep their size and are left untouched.
        let p = plan(100, 50, Fit::Inside, 320, 320);
        assert_eq!(size(p), (100, 50));
        assert!(p.is_identity(100, 50));
    }

    #[test]
    fn inside_keeps_at_least_one_pixel_on_a_very_thin_image() {
        // Proves extreme aspect ratios never produce a zero-sized variant.
        assert_eq!(size(plan(10_000, 1, Fit::Inside, 320, 320)), (320, 1));
        assert_eq!(size(plan(1, 10_000, Fit::Inside, 320, 320)), (1, 320));
    }

    #[test]
    fn cover_crops_the_middle_to_the_box_shape_and_fills_the_box() {
        // Proves a cover variant is exactly the box, cut from the centre of the source.
        let p = plan(400, 200, Fit::Cover, 100, 100);
        assert_eq!(size(p), (100, 100));
        assert_eq!(
            p.crop,
            Crop {
                left: 100.0,
                top: 0.0,
                width: 200.0,
                height: 200.0
            }
        );
        let p = plan(300, 900, Fit::Cover, 200, 100);
        assert_eq!(size(p), (200, 100));
        assert_eq!(
            p.crop,
            Crop {
                left: 0.0,
                top: 375.0,
                width: 300.0,
                height: 150.0
            }
        );
    }

    #[test]
    fn cover_on_a_small_image_crops_to_the_box_shape_without_scaling_up() {
        // Proves cover never enlarges: it keeps the box's shape at the image's own scale.
        let p = plan(200, 100, Fit::Cover, 320, 320);
        assert_eq!(size(p), (100, 100));
        assert_eq!(
            p.crop,
            Crop {
                left: 50.0,
                top: 0.0,
                width: 100.0,
                height: 100.0
            }
        );
        // Taller than the box but narrower: the width is kept, the height cut to the shape.
        assert_eq!(size(plan(100, 1000, Fit::Cover, 320, 160)), (100, 50));
    }

    #[test]
    fn a_one_pixel_image_stays_one_pixel_in_either_fit() {
        // Proves the smallest possible input is handled without degenerate crops.
        for fit in [Fit::Inside, Fit::Cover] {
            let p = plan(1, 1, fit, 320, 200);
            assert_eq!(size(p), (1, 1));
            assert!(p.is_identity(1, 1));
        }
    }
}
