//! The face crop an arrival is logged with: what an administrator looks at when someone
//! says "that was not me".

use image::codecs::jpeg::JpegEncoder;
use image::imageops;

use crate::decode::DecodedImage;
use crate::geometry::BoundingBox;

/// The crop's longest side at most, in pixels: enough to recognise a person by eye,
/// small enough to keep thousands a day (≈ 11 kB each).
pub const EVIDENCE_MAX_SIDE: u32 = 224;
/// Context kept around the detector's box, as a fraction of its size on each side.
const MARGIN: f32 = 0.25;
const JPEG_QUALITY: u8 = 85;

/// The face in `bbox` with some context around it, scaled down to at most
/// [`EVIDENCE_MAX_SIDE`] and encoded as JPEG. `None` for a box outside the photo.
pub fn evidence_crop(image: &DecodedImage, bbox: &BoundingBox) -> Option<Vec<u8>> {
    let rgb = image.rgb();
    let (width, height) = (rgb.width() as f32, rgb.height() as f32);
    let x0 = (bbox.x - MARGIN * bbox.width).clamp(0.0, width);
    let y0 = (bbox.y - MARGIN * bbox.height).clamp(0.0, height);
    let x1 = (bbox.x + (1.0 + MARGIN) * bbox.width).clamp(0.0, width);
    let y1 = (bbox.y + (1.0 + MARGIN) * bbox.height).clamp(0.0, height);
    let (crop_width, crop_height) = ((x1 - x0) as u32, (y1 - y0) as u32);
    if crop_width == 0 || crop_height == 0 {
        return None;
    }
    let mut crop = imageops::crop_imm(rgb, x0 as u32, y0 as u32, crop_width, crop_height).to_image();
    let longest = crop_width.max(crop_height);
    if longest > EVIDENCE_MAX_SIDE {
        let scale = EVIDENCE_MAX_SIDE as f32 / longest as f32;
        let size = |side: u32| ((side as f32 * scale).round() as u32).max(1);
        // The detector's area average: the filter for shrinking, and far cheaper than a
        // triangle filter's over a face crop of a multi-megapixel photo (a profile of the
        // HTTP bench had that resize at 1.6% of the server's CPU).
        crop = crate::detect::area_resize(&crop, size(crop_width), size(crop_height));
    }
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY).encode_image(&crop).ok()?;
    Some(jpeg)
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;

    fn photo(width: u32, height: u32) -> DecodedImage {
        DecodedImage::from_rgb(RgbImage::from_fn(width, height, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90])))
    }

    #[test]
    fn a_large_face_is_cropped_with_context_and_scaled_down() {
        let bbox = BoundingBox { x: 400.0, y: 300.0, width: 400.0, height: 500.0 };
        let jpeg = evidence_crop(&photo(1600, 1200), &bbox).expect("a crop");
        let crop = image::load_from_memory(&jpeg).expect("a JPEG");
        // 600 × 750 with the margins, scaled to a longest side of 224.
        assert_eq!((crop.width(), crop.height()), (179, 224));
    }

    #[test]
    fn a_face_at_the_edge_is_cut_at_the_photo_and_a_box_outside_it_gives_nothing() {
        let edge = BoundingBox { x: -20.0, y: 10.0, width: 80.0, height: 100.0 };
        let crop = image::load_from_memory(&evidence_crop(&photo(200, 150), &edge).unwrap()).unwrap();
        assert_eq!((crop.width(), crop.height()), (80, 135));
        let outside = BoundingBox { x: 500.0, y: 500.0, width: 50.0, height: 50.0 };
        assert!(evidence_crop(&photo(200, 150), &outside).is_none());
    }
}
