//! Rollcall's face engine: decoding, detection, alignment, quality, anti-spoofing,
//! embeddings and 1:N matching on the CPU.
//!
//! This crate must not depend on HTTP, SQL or an async runtime: the server calls it
//! from blocking worker threads, and deployers can use it on its own.

pub mod antispoof;
mod error;
mod geometry;

pub use error::{Error, Result};
pub use geometry::{BoundingBox, Landmarks, Point};
