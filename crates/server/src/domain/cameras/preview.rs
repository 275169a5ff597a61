//! A camera's live preview for admins' browsers: sampled frames, at most two a second,
//! scaled down, with a box on each face and the name of each recognised person, as JPEG.
//! Frames are drawn only while someone watches, so an unwatched camera pays nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage, imageops};
use rollcall_face::BoundingBox;
use tokio::sync::watch;

/// The shortest time between two preview frames.
const PREVIEW_INTERVAL: Duration = Duration::from_millis(500);
/// Preview frames are at most this wide.
const PREVIEW_MAX_WIDTH: u32 = 960;
const PREVIEW_JPEG_QUALITY: u8 = 70;
/// Recognised faces are boxed in green, others in amber.
const RECOGNISED: Rgb<u8> = Rgb([0, 230, 64]);
const UNRECOGNISED: Rgb<u8> = Rgb([255, 176, 0]);
/// Names are drawn this many times the 8-pixel font.
const TEXT_SCALE: u32 = 2;
const MAX_NAME_CHARS: usize = 32;

/// The newest preview frame of one camera, for any number of viewers.
pub struct PreviewFeed {
    frames: watch::Sender<Option<Arc<Vec<u8>>>>,
    last: Mutex<Option<Instant>>,
}

impl Default for PreviewFeed {
    fn default() -> Self {
        Self { frames: watch::channel(None).0, last: Mutex::new(None) }
    }
}

impl PreviewFeed {
    /// Whether a frame sampled `now` should be drawn: someone watches and the last frame
    /// is old enough.
    pub fn due(&self, now: Instant) -> bool {
        if self.frames.receiver_count() == 0 {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < PREVIEW_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    pub fn publish(&self, jpeg: Vec<u8>) {
        self.frames.send_replace(Some(Arc::new(jpeg)));
    }

    /// Frames from now on (the newest one first, if any).
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Vec<u8>>>> {
        let mut frames = self.frames.subscribe();
        frames.mark_changed();
        frames
    }
}

/// A face to mark on a preview frame.
pub struct Marked<'a> {
    pub bbox: BoundingBox,
    /// Whom the face was recognised as, if anyone.
    pub name: Option<&'a str>,
}

/// `frame` scaled to the preview's size with the faces marked, as JPEG.
pub fn render(frame: &RgbImage, faces: &[Marked<'_>]) -> Option<Vec<u8>> {
    let scale = (PREVIEW_MAX_WIDTH as f32 / frame.width() as f32).min(1.0);
    let mut picture = if scale < 1.0 {
        let height = ((frame.height() as f32 * scale).round() as u32).max(1);
        imageops::resize(frame, PREVIEW_MAX_WIDTH, height, imageops::FilterType::Triangle)
    } else {
        frame.clone()
    };
    for face in faces {
        let colour = if face.name.is_some() { RECOGNISED } else { UNRECOGNISED };
        let (x, y) = ((face.bbox.x * scale).max(0.0) as u32, (face.bbox.y * scale).max(0.0) as u32);
        let (w, h) = ((face.bbox.width * scale) as u32, (face.bbox.height * scale) as u32);
        draw_box(&mut picture, (x, y, w, h), colour);
        if let Some(name) = face.name {
            let text_y = y.saturating_sub(8 * TEXT_SCALE + 4);
            draw_text(&mut picture, (x, text_y), name, colour);
        }
    }
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, PREVIEW_JPEG_QUALITY).encode_image(&picture).ok()?;
    Some(jpeg)
}

/// A rectangle three pixels thick, clipped to the picture.
fn draw_box(picture: &mut RgbImage, (x, y, w, h): (u32, u32, u32, u32), colour: Rgb<u8>) {
    const THICKNESS: u32 = 3;
    let (right, bottom) = ((x + w).min(picture.width()), (y + h).min(picture.height()));
    for py in y..bottom {
        for px in x..right {
            let edge = px < x + THICKNESS || py < y + THICKNESS || px + THICKNESS >= right || py + THICKNESS >= bottom;
            if edge {
                picture.put_pixel(px, py, colour);
            }
        }
    }
}

/// `text` in the 8×8 public-domain font on a dark band, clipped to the picture; characters
/// the font lacks are drawn as `?`.
fn draw_text(picture: &mut RgbImage, (x, y): (u32, u32), text: &str, colour: Rgb<u8>) {
    use font8x8::UnicodeFonts as _;
    let cell = 8 * TEXT_SCALE;
    let glyphs: Vec<[u8; 8]> = text
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| font8x8::BASIC_FONTS.get(c).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]))
        .collect();
    let width = glyphs.len() as u32 * cell + 4;
    for py in y..(y + cell + 4).min(picture.height()) {
        for px in x..(x + width).min(picture.width()) {
            picture.put_pixel(px, py, Rgb([0, 0, 0]));
        }
    }
    for (index, glyph) in glyphs.iter().enumerate() {
        let left = x + 2 + index as u32 * cell;
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..8u32 {
                if bits & (1 << column) == 0 {
                    continue;
                }
                for dy in 0..TEXT_SCALE {
                    for dx in 0..TEXT_SCALE {
                        let (px, py) = (left + column * TEXT_SCALE + dx, y + 2 + row as u32 * TEXT_SCALE + dy);
                        if px < picture.width() && py < picture.height() {
                            picture.put_pixel(px, py, colour);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(picture: &RgbImage, colour: Rgb<u8>) -> usize {
        picture.pixels().filter(|p| **p == colour).count()
    }

    #[test]
    fn faces_are_boxed_and_named_on_a_scaled_down_frame() {
        let frame = RgbImage::from_pixel(1920, 1080, Rgb([90, 90, 90]));
        let face = |x: f32, name| Marked { bbox: BoundingBox { x, y: 400.0, width: 200.0, height: 240.0 }, name };
        let jpeg = render(&frame, &[face(200.0, Some("Barack Obama")), face(1200.0, None)]).unwrap();
        let picture = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!((picture.width(), picture.height()), (960, 540));
        // JPEG shifts colours a little: count pixels near each marking colour.
        let near = |colour: Rgb<u8>| {
            picture.pixels().filter(|p| p.0.iter().zip(colour.0).all(|(a, b)| a.abs_diff(b) < 40)).count()
        };
        assert!(near(RECOGNISED) > 300, "the recognised face is boxed and named in green");
        assert!(near(UNRECOGNISED) > 300, "the other face is boxed in amber");
        let mut plain = RgbImage::from_pixel(100, 100, Rgb([90, 90, 90]));
        draw_text(&mut plain, (0, 0), "Ab", RECOGNISED);
        assert!(count(&plain, RECOGNISED) > 20, "letters are drawn");
    }
}
