//! Embeddings with SFace (`face_recognition_sface_2021dec.onnx`): a 112×112 aligned crop in,
//! a 128-d L2-normalised [`Embedding`] out. [`Template`] fuses a person's embeddings.

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::align::ALIGNED_SIZE;
use crate::backend::{Backend, InferenceModel, NdTensor};
use crate::{Error, Result};

/// File name of the embedding model in the models directory.
pub const SFACE_FILE: &str = "face_recognition_sface_2021dec.onnx";
/// Length of an embedding.
pub const EMBEDDING_DIM: usize = 128;

/// A unit-length face embedding. [`Embedding::new`] is the only way in, so every value of
/// this type is finite and normalised, and cosine similarity is a dot product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f32>", into = "Vec<f32>")]
pub struct Embedding(Box<[f32; EMBEDDING_DIM]>);

impl Embedding {
    /// L2-normalises `values` into an embedding.
    ///
    /// # Errors
    /// [`Error::InvalidTemplate`] for a wrong length, non-finite values or a zero vector.
    pub fn new(values: &[f32]) -> Result<Self> {
        if values.len() != EMBEDDING_DIM {
            return Err(Error::InvalidTemplate(format!(
                "an embedding has {EMBEDDING_DIM} values, got {}",
                values.len()
            )));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidTemplate("embedding values must be finite".into()));
        }
        let norm = values.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt();
        if norm < 1e-12 {
            return Err(Error::InvalidTemplate("an embedding cannot be all zeros".into()));
        }
        let mut out = Box::new([0.0f32; EMBEDDING_DIM]);
        for (o, v) in out.iter_mut().zip(values) {
            *o = (f64::from(*v) / norm) as f32;
        }
        Ok(Self(out))
    }

    /// Cosine similarity in [-1, 1] (the dot product of two unit vectors).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        dot(&self.0[..], &other.0[..])
    }

    /// The normalised values.
    pub fn as_slice(&self) -> &[f32] {
        &self.0[..]
    }

    /// The normalised mean of several embeddings (`None` if empty or they cancel out).
    pub fn mean<'a>(embeddings: impl IntoIterator<Item = &'a Embedding>) -> Option<Embedding> {
        let mut sum = [0.0f32; EMBEDDING_DIM];
        let mut any = false;
        for e in embeddings {
            any = true;
            for (s, v) in sum.iter_mut().zip(e.as_slice()) {
                *s += v;
            }
        }
        if any { Embedding::new(&sum).ok() } else { None }
    }
}

impl TryFrom<Vec<f32>> for Embedding {
    type Error = Error;
    fn try_from(v: Vec<f32>) -> Result<Self> {
        Embedding::new(&v)
    }
}

impl From<Embedding> for Vec<f32> {
    fn from(e: Embedding) -> Self {
        e.0.to_vec()
    }
}

/// Dot product written for auto-vectorisation (8 independent accumulators).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// A person's enrolled face: every accepted embedding, and their normalised mean.
///
/// Serialised by [`Template::to_bytes`] for the server to encrypt and store; the format is
/// `b"RCT1"`, the dimension and the count as little-endian `u16`, then the individual
/// embeddings as little-endian `f32` (the mean is recomputed on load).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    embeddings: Vec<Embedding>,
    mean: Embedding,
}

const TEMPLATE_MAGIC: &[u8; 4] = b"RCT1";

impl Template {
    /// Fuses one or more embeddings.
    ///
    /// # Errors
    /// [`Error::InvalidTemplate`] when `embeddings` is empty or they sum to zero.
    pub fn new(embeddings: Vec<Embedding>) -> Result<Self> {
        let mean = Embedding::mean(&embeddings)
            .ok_or_else(|| Error::InvalidTemplate("a template needs at least one embedding".into()))?;
        Ok(Self { embeddings, mean })
    }

    /// Adds an embedding (e.g. a later, better photo) and updates the mean.
    pub fn push(&mut self, embedding: Embedding) {
        self.embeddings.push(embedding);
        if let Some(mean) = Embedding::mean(&self.embeddings) {
            self.mean = mean;
        }
    }

    /// The individual normalised embeddings, in enrollment order.
    pub fn embeddings(&self) -> &[Embedding] {
        &self.embeddings
    }

    /// The normalised mean of the embeddings.
    pub fn mean(&self) -> &Embedding {
        &self.mean
    }

    /// Highest cosine similarity between `probe` and any of the embeddings.
    pub fn best_cosine(&self, probe: &Embedding) -> f32 {
        self.embeddings.iter().map(|e| e.cosine(probe)).fold(f32::NEG_INFINITY, f32::max)
    }

    /// Serialises the template (see the type's docs for the format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.embeddings.len() * EMBEDDING_DIM * 4);
        out.extend_from_slice(TEMPLATE_MAGIC);
        out.extend_from_slice(&(EMBEDDING_DIM as u16).to_le_bytes());
        out.extend_from_slice(&(self.embeddings.len() as u16).to_le_bytes());
        for e in &self.embeddings {
            for v in e.as_slice() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Parses bytes written by [`Template::to_bytes`].
    ///
    /// # Errors
    /// [`Error::InvalidTemplate`] for a wrong header, dimension or length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |m: &str| Error::InvalidTemplate(m.to_string());
        if bytes.len() < 8 || &bytes[..4] != TEMPLATE_MAGIC {
            return Err(bad("not a Rollcall template (bad header)"));
        }
        let dim = u16::from_le_bytes([bytes[4], bytes[5]]) as usize;
        let count = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
        if dim != EMBEDDING_DIM {
            return Err(bad("template has the wrong embedding dimension"));
        }
        let body = &bytes[8..];
        if body.len() != count * dim * 4 {
            return Err(bad("template length does not match its header"));
        }
        let embeddings = body
            .chunks_exact(dim * 4)
            .map(|chunk| {
                let values: Vec<f32> =
                    chunk.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                Embedding::new(&values)
            })
            .collect::<Result<Vec<_>>>()?;
        Template::new(embeddings)
    }
}

/// SFace, prepared for one 112×112 crop at a time.
#[derive(Debug)]
pub struct Embedder {
    model: Arc<dyn InferenceModel>,
}

impl Embedder {
    /// Loads SFace from `path`.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] or [`Error::Model`].
    pub fn load(backend: &dyn Backend, path: &Path) -> Result<Self> {
        let side = ALIGNED_SIZE as usize;
        let model = backend.load_onnx(path, &[vec![1, 3, side, side]])?;
        Ok(Self { model })
    }

    /// Embeds an aligned 112×112 RGB crop.
    ///
    /// The crop goes in as RGB planes of 0–255 values: OpenCV's `FaceRecognizerSF::feature`
    /// swaps its BGR crop to RGB (`blobFromImage(..., swapRB = true)`), and the model
    /// normalises internally.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a crop of another size, [`Error::Model`] on failure.
    pub fn embed(&self, aligned: &RgbImage) -> Result<Embedding> {
        if aligned.dimensions() != (ALIGNED_SIZE, ALIGNED_SIZE) {
            return Err(Error::InvalidArgument(format!(
                "the embedder needs a {ALIGNED_SIZE}x{ALIGNED_SIZE} aligned crop, got {:?}",
                aligned.dimensions()
            )));
        }
        let side = ALIGNED_SIZE as usize;
        let plane = side * side;
        let mut data = vec![0.0f32; 3 * plane];
        for (i, p) in aligned.pixels().enumerate() {
            data[i] = f32::from(p.0[0]);
            data[plane + i] = f32::from(p.0[1]);
            data[2 * plane + i] = f32::from(p.0[2]);
        }
        let outputs = self.model.run(&[NdTensor { shape: vec![1, 3, side, side], data }])?;
        let out = outputs.first().ok_or_else(|| Error::Model("SFace returned no output".into()))?;
        Embedding::new(&out.data).map_err(|e| Error::Model(format!("SFace output: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize) -> Embedding {
        let mut v = [0.0f32; EMBEDDING_DIM];
        v[i] = 3.0;
        Embedding::new(&v).unwrap()
    }

    #[test]
    fn embeddings_are_normalised_and_validated() {
        let e = unit(3);
        assert!((e.cosine(&e) - 1.0).abs() < 1e-6);
        assert_eq!(e.cosine(&unit(4)), 0.0);
        assert!(Embedding::new(&[1.0; 10]).is_err());
        assert!(Embedding::new(&[0.0; EMBEDDING_DIM]).is_err());
        let mut nan = [1.0; EMBEDDING_DIM];
        nan[5] = f32::NAN;
        assert!(Embedding::new(&nan).is_err());
        let json = serde_json::to_string(&e).unwrap();
        let back: Embedding = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert!(serde_json::from_str::<Embedding>("[1.0, 2.0]").is_err());
    }

    #[test]
    fn dot_matches_naive_sum() {
        let a: Vec<f32> = (0..131).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..131).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn template_mean_and_bytes_roundtrip() {
        let t = Template::new(vec![unit(0), unit(1)]).unwrap();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!((t.mean().as_slice()[0] - s).abs() < 1e-6 && (t.mean().as_slice()[1] - s).abs() < 1e-6);
        assert!((t.best_cosine(&unit(1)) - 1.0).abs() < 1e-6);
        let bytes = t.to_bytes();
        assert_eq!(bytes.len(), 8 + 2 * EMBEDDING_DIM * 4);
        assert_eq!(Template::from_bytes(&bytes).unwrap(), t);
        assert!(Template::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(Template::from_bytes(b"nope").is_err());
        assert!(Template::new(vec![]).is_err());
        let mut t2 = t.clone();
        t2.push(unit(2));
        assert_eq!(t2.embeddings().len(), 3);
    }
}
