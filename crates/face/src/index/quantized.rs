//! An int8 copy of the index's rows for a pass whose error has a proven bound: the second
//! of the search's three passes, over the rows the 4-bit pass ([`super::nibbles`]) kept, so
//! the exact f32 pass only re-scores the rows that can still change the result.
//!
//! A row `x` is coded as `round(256·x)` clamped to ±127 (a quarter of the bytes of f32) and
//! stored offset by 128 as an unsigned byte, the probe `p` as signed bytes at full range
//! (the operand types of the dot-product instruction [`kernel`] uses). Writing `e` for a
//! row's coding error and `d` for the probe's, the coded score differs from the real one by
//! `|Σ pᵢeᵢ + Σ dᵢ(xᵢ − eᵢ)| ≤ ‖e‖ + ‖d‖(1 + ‖e‖)` (Cauchy–Schwarz, unit vectors), whatever
//! the data.

use super::TopTwo;
use super::kernel;
use crate::embed::EMBEDDING_DIM;

/// Codes per unit of similarity: components up to ±0.496 are coded without clamping, and
/// a larger one only widens that row's error bound.
const CODE_SCALE: f64 = 256.0;
const CODE_LIMIT: f64 = 127.0;
/// Covers the f32 rounding of the exact dot product (well under 1e-5 for 128 terms of unit
/// vectors) and of the bound arithmetic itself.
const ROUNDING_SLACK: f64 = 1e-4;
/// What a stored byte adds to a row's code.
const CODE_OFFSET: i32 = 128;

/// The coded rows, kept in step with the f32 rows they mirror.
#[derive(Debug, Clone, Default)]
pub(super) struct QuantizedRows {
    /// Each row's codes plus [`CODE_OFFSET`].
    codes: Vec<u8>,
    /// Largest coding error ‖x − code/256‖ of any row stored so far. Not lowered when rows
    /// go: a stale maximum is still a valid bound, only a slightly wider one.
    max_error: f64,
}

/// A probe coded for [`QuantizedRows::candidates`].
pub(super) struct QuantizedProbe {
    codes: [i8; EMBEDDING_DIM],
    /// `CODE_OFFSET · Σ codes`: what the stored offset adds to every row's score.
    offset: i32,
    /// Codes per unit of similarity.
    scale: f64,
    /// ‖p − code/scale‖.
    error: f64,
}

impl QuantizedProbe {
    pub(super) fn new(probe: &[f32]) -> Self {
        let largest = probe.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(f64::MIN_POSITIVE);
        let limit = f64::from(i8::MAX);
        let scale = limit / largest;
        let mut codes = [0i8; EMBEDDING_DIM];
        let mut error_sq = 0.0;
        for (code, value) in codes.iter_mut().zip(probe) {
            let scaled = (f64::from(*value) * scale).round().clamp(-limit, limit);
            *code = scaled as i8;
            error_sq += (f64::from(*value) - scaled / scale).powi(2);
        }
        let offset = CODE_OFFSET * codes.iter().map(|&c| i32::from(c)).sum::<i32>();
        Self { codes, offset, scale, error: error_sq.sqrt() }
    }

    pub(super) fn codes(&self) -> &[i8; EMBEDDING_DIM] {
        &self.codes
    }

    /// Codes per unit of similarity.
    pub(super) fn scale(&self) -> f64 {
        self.scale
    }

    /// ‖p − code/scale‖.
    pub(super) fn error(&self) -> f64 {
        self.error
    }
}

impl QuantizedRows {
    pub(super) fn reserve(&mut self, rows: usize) {
        self.codes.reserve(rows * EMBEDDING_DIM);
    }

    pub(super) fn push(&mut self, row: &[f32]) {
        let mut error_sq = 0.0;
        for value in row {
            let code = (f64::from(*value) * CODE_SCALE).round().clamp(-CODE_LIMIT, CODE_LIMIT);
            self.codes.push((code as i32 + CODE_OFFSET) as u8);
            error_sq += (f64::from(*value) - code / CODE_SCALE).powi(2);
        }
        self.max_error = self.max_error.max(error_sq.sqrt());
    }

    /// Moves row `from` onto row `to` (for compaction after a removal).
    pub(super) fn move_row(&mut self, from: usize, to: usize) {
        self.codes.copy_within(from * EMBEDDING_DIM..(from + 1) * EMBEDDING_DIM, to * EMBEDDING_DIM);
    }

    pub(super) fn truncate(&mut self, rows: usize) {
        self.codes.truncate(rows * EMBEDDING_DIM);
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.codes.len()
    }

    /// Every row of `rows` (ascending, and holding every row whose real score reaches the
    /// second-best identity's) whose real score can still reach it, in row order.
    ///
    /// With `E` the error bound, the coded second-best identity score `Q₂` over `rows` is
    /// at most `S₂ + E` (`S₂` the real second-best identity score over all rows), so a row
    /// scoring at least `S₂` codes to at least `Q₂ − 2E`. Rows below that cannot be the
    /// best or second identity's best row, and the exact scan over the rest gives the same
    /// result as over all rows. The threshold is raised as the scan goes (the running `Q₂`
    /// only grows), so most rows cost one coded dot product.
    pub(super) fn candidates_among(
        &self,
        probe: &QuantizedProbe,
        rows: &[usize],
        owner: impl Fn(usize) -> u32,
    ) -> Vec<usize> {
        let window = self.window(probe);
        let mut top = TopTwo::new(i64::MIN);
        let mut threshold = i64::MIN;
        let mut found: Vec<(usize, i64)> = Vec::new();
        let mut raw = [0i32; 1];
        for &row in rows {
            kernel::row_scores(&probe.codes, &self.codes[row * EMBEDDING_DIM..(row + 1) * EMBEDDING_DIM], &mut raw);
            let score = i64::from(raw[0] - probe.offset);
            if score >= threshold {
                found.push((row, score));
                top.offer(owner(row), score);
                threshold = top.second.1.saturating_sub(window);
            }
        }
        found.into_iter().filter(|&(_, score)| score >= threshold).map(|(row, _)| row).collect()
    }

    /// `2E` in code units, rounded up.
    fn window(&self, probe: &QuantizedProbe) -> i64 {
        let bound = self.max_error + probe.error * (1.0 + self.max_error) + ROUNDING_SLACK;
        (2.0 * bound * CODE_SCALE * probe.scale).ceil() as i64 + 1
    }
}
