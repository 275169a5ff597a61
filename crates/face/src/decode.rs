//! Decoding uploaded photos: JPEG, PNG and WebP from raw bytes, base64 or `data:` URIs.
//!
//! Dimensions are read from the header and checked against a pixel limit *before* any
//! pixel buffer is allocated, so a small file claiming to be 100000×100000 is refused
//! cheaply. EXIF orientation is applied, so a phone photo taken sideways comes out upright.

use std::borrow::Cow;
use std::io::Cursor;

use base64::Engine as _;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use crate::{Error, Result};

/// Default pixel limit: 40 megapixels (a 7,700×5,200 photo).
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeOptions {
    /// Largest accepted `width × height`, checked from the header before decoding.
    pub max_pixels: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { max_pixels: DEFAULT_MAX_PIXELS }
    }
}

/// A decoded, upright RGB photo.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    rgb: RgbImage,
    format: ImageFormat,
}

impl DecodedImage {
    /// Wraps an RGB image that is already in memory (e.g. a camera frame).
    pub fn from_rgb(rgb: RgbImage) -> Self {
        Self { rgb, format: ImageFormat::Png }
    }

    /// The upright pixels.
    pub fn rgb(&self) -> &RgbImage {
        &self.rgb
    }

    /// Width in pixels (after EXIF orientation).
    pub fn width(&self) -> u32 {
        self.rgb.width()
    }

    /// Height in pixels (after EXIF orientation).
    pub fn height(&self) -> u32 {
        self.rgb.height()
    }

    /// The container format the bytes were in (`Png` for [`DecodedImage::from_rgb`]).
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// Gives the pixels back.
    pub fn into_rgb(self) -> RgbImage {
        self.rgb
    }
}

/// Decodes image bytes (JPEG, PNG or WebP), applying EXIF orientation.
///
/// # Errors
/// [`Error::NotAnImage`] for bytes of no known image format, [`Error::UnsupportedFormat`]
/// for other image formats (GIF, BMP, ...), [`Error::TooLarge`] when the header claims more
/// than `options.max_pixels`, [`Error::Truncated`] or [`Error::Corrupt`] for damaged files.
pub fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<DecodedImage> {
    let format = image::guess_format(bytes).map_err(|_| Error::NotAnImage)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) {
        return Err(Error::UnsupportedFormat(format!("{format:?}").to_lowercase()));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Error::Truncated);
    }

    // Header only, without limits, so an oversized image is reported with its size.
    let mut probe = ImageReader::with_format(Cursor::new(bytes), format);
    probe.no_limits();
    let (width, height) = probe.into_dimensions().map_err(map_image_error)?;
    if u64::from(width) * u64::from(height) > options.max_pixels {
        return Err(Error::TooLarge { width, height, limit: options.max_pixels });
    }

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    // RGBA at 8 bits plus working space for orientation: 8 bytes per allowed pixel.
    limits.max_alloc = Some(options.max_pixels.saturating_mul(8));
    reader.limits(limits);

    // Reads the header only: no pixel buffer exists yet.
    let mut decoder = reader.into_decoder().map_err(map_image_error)?;
    if decoder.dimensions() != (width, height) {
        return Err(Error::Corrupt("the image header changed between reads".into()));
    }
    if width == 0 || height == 0 {
        return Err(Error::Corrupt("the image has no pixels".into()));
    }
    // A broken EXIF block must not cost the photo: fall back to "as stored".
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(map_image_error)?;
    image.apply_orientation(orientation);
    Ok(DecodedImage { rgb: image.into_rgb8(), format })
}

/// Decodes a `data:image/...;base64,` URI or a bare base64 string, then the image in it.
///
/// # Errors
/// [`Error::InvalidBase64`] when the text is not valid base64 (or the URI is not base64),
/// then as [`decode`].
pub fn decode_base64(text: &str, options: &DecodeOptions) -> Result<DecodedImage> {
    let bytes = base64_payload(text)?;
    decode(&bytes, options)
}

/// Extracts the bytes of a `data:` URI or bare base64 string (whitespace ignored).
///
/// # Errors
/// [`Error::InvalidBase64`] as for [`decode_base64`].
pub fn base64_payload(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let payload = match text.strip_prefix("data:") {
        Some(rest) => {
            let (meta, data) =
                rest.split_once(',').ok_or_else(|| Error::InvalidBase64("a data: URI needs a comma".into()))?;
            if !meta.ends_with(";base64") {
                return Err(Error::InvalidBase64("only base64 data: URIs are accepted".into()));
            }
            data
        }
        None => text,
    };
    // A photo's text is megabytes: one pass without early exit (which the compiler
    // vectorises) says whether it needs copying without its whitespace, and which alphabet.
    let (spaced, url_safe) = payload.bytes().fold((false, false), |(spaced, url_safe), b| {
        (spaced | b.is_ascii_whitespace(), url_safe | (b == b'-' || b == b'_'))
    });
    let cleaned: Cow<'_, str> = if spaced {
        payload.chars().filter(|c| !c.is_ascii_whitespace()).collect::<String>().into()
    } else {
        payload.into()
    };
    // Accept both padded and unpadded, standard and URL-safe alphabets.
    let cleaned = cleaned.trim_end_matches('=');
    let engine = if url_safe {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    engine.decode(cleaned).map_err(|e| Error::InvalidBase64(e.to_string()))
}

/// Encodes bytes as a `data:` URI (used by tests and tools).
pub fn to_data_uri(bytes: &[u8], mime: &str) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Whether a JPEG has an end-of-image marker after its last start-of-scan marker.
///
/// The JPEG decoder fills a cut-off scan with grey instead of failing; a cut upload
/// must be refused instead, since half a face embeds as someone else. Inside
/// entropy-coded data every 0xFF is followed by 0x00 or a restart marker, so an
/// 0xFFD9 after the last 0xFFDA can only be the real end-of-image marker.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(last_sos) = memchr::memmem::rfind(bytes, &[0xFF, 0xDA]) else {
        return false;
    };
    memchr::memmem::find(&bytes[last_sos..], &[0xFF, 0xD9]).is_some()
}

fn map_image_error(e: ImageError) -> Error {
    match e {
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Error::Truncated,
        ImageError::IoError(io) => Error::Corrupt(io.to_string()),
        ImageError::Decoding(d) => {
            let text = d.to_string();
            let lower = text.to_lowercase();
            if lower.contains("eof") || lower.contains("end of file") || lower.contains("truncat") {
                Error::Truncated
            } else {
                Error::Corrupt(text)
            }
        }
        ImageError::Limits(l) => Error::Corrupt(format!("the image exceeds decoding limits: {l}")),
        ImageError::Unsupported(u) => Error::UnsupportedFormat(u.to_string()),
        other => Error::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn text_is_not_an_image() {
        assert!(matches!(decode(b"hello, world", &DecodeOptions::default()), Err(Error::NotAnImage)));
        assert!(matches!(decode(b"", &DecodeOptions::default()), Err(Error::NotAnImage)));
    }

    #[test]
    fn gif_is_unsupported() {
        let r = decode(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", &DecodeOptions::default());
        assert!(matches!(r, Err(Error::UnsupportedFormat(_))), "{r:?}");
    }

    #[test]
    fn png_roundtrip_and_pixel_limit() {
        let bytes = png_bytes(20, 10);
        let img = decode(&bytes, &DecodeOptions::default()).unwrap();
        assert_eq!((img.width(), img.height()), (20, 10));
        assert_eq!(img.rgb().get_pixel(3, 4).0, [3, 4, 7]);
        let r = decode(&bytes, &DecodeOptions { max_pixels: 199 });
        assert!(matches!(r, Err(Error::TooLarge { width: 20, height: 10, limit: 199 })), "{r:?}");
    }

    #[test]
    fn data_uri_and_bare_base64_give_the_same_bytes() {
        let bytes = png_bytes(3, 3);
        let uri = to_data_uri(&bytes, "image/png");
        assert!(uri.starts_with("data:image/png;base64,"));
        assert_eq!(base64_payload(&uri).unwrap(), bytes);
        let bare = uri.split_once(',').unwrap().1;
        assert_eq!(base64_payload(bare).unwrap(), bytes);
        assert!(matches!(base64_payload("data:image/png;base64,@@@"), Err(Error::InvalidBase64(_))));
        assert!(matches!(base64_payload("data:image/png,abc"), Err(Error::InvalidBase64(_))));
    }

    #[test]
    fn jpeg_completeness() {
        assert!(jpeg_is_complete(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0x00, 0xFF, 0xD9]));
        assert!(!jpeg_is_complete(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0x00]));
        assert!(!jpeg_is_complete(&[0xFF, 0xD8, 0xFF, 0xD9]));
    }
}
