//! The face engine's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the face engine.
///
/// Input errors (`NotAnImage`, `UnsupportedFormat`, `Corrupt`, `Truncated`, `TooLarge`,
/// `InvalidBase64`) are the caller's fault and map to 4xx answers; `ModelMissing` and
/// `Model` are deployment or engine faults.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not an image in any format we know.
    #[error("the data is not an image")]
    NotAnImage,
    /// The bytes are an image, but in a format Rollcall does not decode.
    #[error("unsupported image format: {0} (use JPEG, PNG or WebP)")]
    UnsupportedFormat(String),
    /// The image ends before its data does.
    #[error("the image is truncated")]
    Truncated,
    /// The image is damaged or malformed.
    #[error("the image is corrupt: {0}")]
    Corrupt(String),
    /// The image's header claims more pixels than allowed (checked before decoding).
    #[error("the image is too large: {width}x{height} pixels, the limit is {limit} pixels")]
    TooLarge {
        /// Width claimed by the header.
        width: u32,
        /// Height claimed by the header.
        height: u32,
        /// Configured maximum number of pixels.
        limit: u64,
    },
    /// A `data:` URI or base64 string could not be decoded.
    #[error("invalid base64 image data: {0}")]
    InvalidBase64(String),
    /// A model file is not where the configuration says.
    #[error("model file {} is missing (run `make models`)", path.display())]
    ModelMissing {
        /// Expected path of the model file.
        path: PathBuf,
    },
    /// A model failed to load or run.
    #[error("model error: {0}")]
    Model(String),
    /// A template or embedding could not be (de)serialised or had the wrong shape.
    #[error("invalid template: {0}")]
    InvalidTemplate(String),
    /// A caller passed an argument outside its domain (e.g. a threshold outside [-1, 1]).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
