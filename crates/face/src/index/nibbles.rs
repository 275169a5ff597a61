//! A 4-bit copy of the index's rows: the first of the search's three passes, so that a
//! gallery too large for the CPU's cache costs half the memory traffic of the int8 pass.
//!
//! Each row `x` is coded with a scale of its own, `s = 7 / max |xᵢ|`: `cᵢ = round(s·xᵢ)` in
//! −7..=7, stored as `cᵢ + 8` in a nibble (64 bytes a row). Its coding error `‖x − c/s‖` is
//! kept beside it, and the probe is coded as for the int8 pass ([`QuantizedProbe`]), so the
//! same bound holds row by row: the coded score is within `‖e‖ + ‖d‖(1 + ‖e‖)` of the real
//! one (Cauchy–Schwarz, unit vectors), whatever the data.
//!
//! Rows go in blocks of [`LANES`]: for each group of 8 dimensions a block holds the 16 rows'
//! 4 bytes side by side, byte `k` of a row carrying dimension `8g + k` in its low nibble and
//! `8g + 4 + k` in its high one. One 64-byte load then feeds the dot products of 16 rows at
//! once ([`kernel::nibble_bounds`]), with no sum across a vector per row; the bounds and
//! the comparison with the running threshold are done 16 rows at a time as well, so only
//! the few rows that pass are looked at one by one.

use super::TopTwo;
use super::kernel::{self, BLOCK_STRIDE, ERRORS_AT, LANES, NibbleBounds, NibbleProbe, STEPS_AT};
use super::quantized::QuantizedProbe;
use crate::embed::EMBEDDING_DIM;

/// Largest code magnitude: a signed nibble without its lowest value, so codes are symmetric.
const CODE_LIMIT: f64 = 7.0;
/// What a stored nibble adds to a row's code.
const CODE_OFFSET: i32 = 8;
/// Covers the f32 arithmetic of the estimate and its bound (well under 1e-5).
const ROUNDING_SLACK: f32 = 1e-4;
/// Blocks handed to the kernel at a time: their bounds stay in L1.
const CHUNK_BLOCKS: usize = 16;
/// Bytes of such a chunk.
const CHUNK_BYTES: usize = CHUNK_BLOCKS * BLOCK_STRIDE;

/// The 4-bit rows, kept in step with the f32 rows they mirror.
#[derive(Debug, Clone, Default)]
pub(super) struct NibbleRows {
    rows: usize,
    /// Whole blocks, each with its lanes' steps (`1/s`, what one code unit of the row is
    /// worth) and errors (`‖x − c/s‖`, rounded up); lanes past the last row are never
    /// taken as candidates.
    blocks: Vec<u8>,
}

impl NibbleRows {
    pub(super) fn reserve(&mut self, rows: usize) {
        self.blocks.reserve(rows.div_ceil(LANES) * BLOCK_STRIDE);
    }

    pub(super) fn push(&mut self, row: &[f32]) {
        let largest = row.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(f64::MIN_POSITIVE);
        let scale = CODE_LIMIT / largest;
        let mut nibbles = [0u8; EMBEDDING_DIM];
        let mut error_sq = 0.0;
        for (nibble, value) in nibbles.iter_mut().zip(row) {
            let code = (f64::from(*value) * scale).round().clamp(-CODE_LIMIT, CODE_LIMIT);
            *nibble = (code as i32 + CODE_OFFSET) as u8;
            error_sq += (f64::from(*value) - code / scale).powi(2);
        }
        let at = self.rows;
        if at.is_multiple_of(LANES) {
            self.blocks.resize(self.blocks.len() + BLOCK_STRIDE, 0);
        }
        self.write_lane(at, &nibbles);
        let [step, error] = Self::value_offsets(at);
        self.blocks[step..step + 4].copy_from_slice(&((1.0 / scale) as f32).to_le_bytes());
        self.blocks[error..error + 4].copy_from_slice(&(error_sq.sqrt() as f32).next_up().to_le_bytes());
        self.rows += 1;
    }

    /// Byte offsets of row `row`'s 4-byte pieces: one per group of 8 dimensions, then its
    /// step and its error.
    fn lane_offsets(row: usize) -> impl Iterator<Item = usize> {
        let base = Self::lane_base(row);
        (0..EMBEDDING_DIM / 8).map(move |group| base + group * LANES * 4).chain(Self::value_offsets(row))
    }

    /// Byte offsets of row `row`'s step and error.
    fn value_offsets(row: usize) -> [usize; 2] {
        let base = Self::lane_base(row);
        [base + STEPS_AT, base + ERRORS_AT]
    }

    /// Where row `row`'s first 4 bytes are: its block, then its lane.
    fn lane_base(row: usize) -> usize {
        row / LANES * BLOCK_STRIDE + row % LANES * 4
    }

    fn write_lane(&mut self, row: usize, nibbles: &[u8; EMBEDDING_DIM]) {
        for (group, at) in Self::lane_offsets(row).take(EMBEDDING_DIM / 8).enumerate() {
            for k in 0..4 {
                let (low, high) = (nibbles[8 * group + k], nibbles[8 * group + 4 + k]);
                self.blocks[at + k] = low | high << 4;
            }
        }
    }

    /// Moves row `from` onto row `to` (for compaction after a removal).
    pub(super) fn move_row(&mut self, from: usize, to: usize) {
        for (source, target) in Self::lane_offsets(from).zip(Self::lane_offsets(to)) {
            self.blocks.copy_within(source..source + 4, target);
        }
    }

    pub(super) fn truncate(&mut self, rows: usize) {
        self.blocks.truncate(rows.div_ceil(LANES) * BLOCK_STRIDE);
        self.rows = self.rows.min(rows);
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.blocks.len()
    }

    /// Every row whose real score can reach the second-best identity's, in row order,
    /// scanned on `threads` threads (each a contiguous share of the blocks).
    ///
    /// Each row's coded estimate with its bound gives an interval the real score lies in.
    /// The second-best identity's real score `S₂` is at least the second-highest identity
    /// lower end seen (two identities with those real scores exist), so a row whose upper
    /// end is below that cannot be the best or second identity's best row. The threshold
    /// only rises as a scan goes (the kernel compares with its value at the start of each
    /// chunk, which can only keep more rows); each thread's share has a threshold of its
    /// own, lower than the whole scan's would be, and the rows kept are filtered again at
    /// the end with the threshold of all shares together.
    pub(super) fn candidates(
        &self,
        probe: &QuantizedProbe,
        owner: impl Fn(usize) -> u32 + Sync,
        threads: usize,
    ) -> Vec<usize> {
        let probe = NibbleProbe::new(
            probe.codes(),
            CODE_OFFSET,
            (1.0 / probe.scale()) as f32,
            probe.error() as f32,
            ROUNDING_SLACK,
        );
        let chunks = self.blocks.len().div_ceil(CHUNK_BYTES);
        let per_thread = chunks.div_ceil(threads.max(1)).max(1);
        let shares: Vec<Share> = if per_thread >= chunks {
            vec![self.scan(&probe, 0..chunks, &owner)]
        } else {
            std::thread::scope(|scope| {
                let scans: Vec<_> = (0..chunks)
                    .step_by(per_thread)
                    .map(|first| {
                        let (probe, owner) = (&probe, &owner);
                        scope.spawn(move || self.scan(probe, first..(first + per_thread).min(chunks), owner))
                    })
                    .collect();
                scans.into_iter().map(|scan| scan.join().expect("a search thread panicked")).collect()
            })
        };
        let mut top = TopTwo::new(f32::NEG_INFINITY);
        for share in &shares {
            top.merge(&share.top);
        }
        let threshold = top.second.1;
        shares
            .into_iter()
            .flat_map(|share| share.found)
            .filter(|&(_, upper)| upper >= threshold)
            .map(|(row, _)| row)
            .collect()
    }

    /// The rows of chunks `chunks` that can reach the running threshold, with their upper
    /// bounds, and the best two identities' lower ends among them.
    fn scan(&self, probe: &NibbleProbe, chunks: std::ops::Range<usize>, owner: &impl Fn(usize) -> u32) -> Share {
        let bytes = &self.blocks[chunks.start * CHUNK_BYTES..(chunks.end * CHUNK_BYTES).min(self.blocks.len())];
        let mut top = TopTwo::new(f32::NEG_INFINITY);
        let mut threshold = f32::NEG_INFINITY;
        let mut found: Vec<(usize, f32)> = Vec::new();
        let (mut upper, mut lower) = ([0.0f32; CHUNK_BLOCKS * LANES], [0.0f32; CHUNK_BLOCKS * LANES]);
        let mut flagged = [0u16; CHUNK_BLOCKS];
        for (chunk, bytes) in (chunks.start..).zip(bytes.chunks(CHUNK_BYTES)) {
            let out = NibbleBounds { upper: &mut upper, lower: &mut lower, flagged: &mut flagged };
            kernel::nibble_bounds(probe, bytes, threshold, out);
            let first = chunk * CHUNK_BLOCKS * LANES;
            for (block, &mask) in flagged[..bytes.len() / BLOCK_STRIDE].iter().enumerate() {
                let mut mask = mask;
                while mask != 0 {
                    let at = block * LANES + mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let row = first + at;
                    if row < self.rows && upper[at] >= threshold {
                        found.push((row, upper[at]));
                        top.offer(owner(row), lower[at]);
                        threshold = top.second.1;
                    }
                }
            }
        }
        Share { found, top }
    }
}

/// What one thread's scan of a share of the blocks kept.
struct Share {
    found: Vec<(usize, f32)>,
    top: TopTwo<f32>,
}
