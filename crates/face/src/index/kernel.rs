//! The inner loops of the coded passes: for each row of unsigned codes, its integer dot
//! product with a probe of signed bytes; [`row_scores`] for int8 rows of [`EMBEDDING_DIM`]
//! bytes, [`nibble_bounds`] for blocks of 16 rows of 4-bit codes.
//!
//! The scan is limited by memory bandwidth only once each row costs a couple of
//! instructions. On CPUs with AVX-512 VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later) one
//! `vpdpbusd` multiplies and sums 64 byte pairs, so a 128-byte row takes two; that is why the
//! rows are unsigned and the probe signed (the instruction's operand types). On CPUs with
//! AVX2 only (most x86-64 of the last ten years) the 4-bit pass does the same with
//! `vpmaddubsw` and `vpmaddwd` on 32 bytes at a time: the 4-bit codes keep its 16-bit sums
//! far from saturating, so the integers are exact. Elsewhere a portable loop gives the same
//! integers more slowly. The choice is made at run time, so one binary runs on any x86-64.
//!
//! This module is the crate's only `unsafe` code: the intrinsics read through raw pointers,
//! and calling a function compiled for features the build does not assume needs the run-time
//! check first.
#![allow(unsafe_code)]

use crate::embed::EMBEDDING_DIM;

/// Rows in a block of 4-bit codes.
pub(super) const LANES: usize = 16;
/// Bytes of codes in a block: [`LANES`] rows of [`EMBEDDING_DIM`] nibbles.
pub(super) const BLOCK_BYTES: usize = LANES * EMBEDDING_DIM / 2;
/// Bytes of a whole block: its codes, then each lane's step and each lane's error as
/// little-endian f32s, so the pass reads one stream of memory.
pub(super) const BLOCK_STRIDE: usize = BLOCK_BYTES + 2 * LANES * 4;
/// Where a block's steps start.
pub(super) const STEPS_AT: usize = BLOCK_BYTES;
/// Where a block's errors start.
pub(super) const ERRORS_AT: usize = BLOCK_BYTES + LANES * 4;
/// Groups of 8 dimensions in a row.
const GROUPS: usize = EMBEDDING_DIM / 8;
/// How far ahead of the loads the 4-bit pass asks for memory: the scan is limited by
/// memory latency otherwise, the hardware prefetcher alone keeping too few lines in flight.
#[cfg(target_arch = "x86_64")]
const PREFETCH_AHEAD: usize = 4 * BLOCK_STRIDE;

/// What the 4-bit pass needs of a probe: its bytes, for each group of 8 dimensions the
/// first 4 and the last 4 as one little-endian word each, and the constants of the bound.
pub(super) struct NibbleProbe {
    groups: [[i32; 2]; GROUPS],
    /// What the stored nibble offset adds to every row's integer score.
    offset: i32,
    /// What one unit of the probe's codes is worth.
    step: f32,
    /// `1 + ‖d‖` and `‖d‖ + slack`: a row's bound is `error · (1 + ‖d‖) + ‖d‖ + slack`.
    error_factor: f32,
    error_base: f32,
}

impl NibbleProbe {
    /// `nibble_offset` is what every stored nibble adds to its code; `error` the probe's
    /// coding error `‖d‖`, `slack` what covers the f32 arithmetic.
    pub(super) fn new(codes: &[i8; EMBEDDING_DIM], nibble_offset: i32, step: f32, error: f32, slack: f32) -> Self {
        let word = |at: usize| i32::from_le_bytes(std::array::from_fn(|k| codes[at + k] as u8));
        Self {
            groups: std::array::from_fn(|group| [word(8 * group), word(8 * group + 4)]),
            offset: nibble_offset * codes.iter().map(|&c| i32::from(c)).sum::<i32>(),
            step,
            error_factor: 1.0 + error,
            error_base: error + slack,
        }
    }
}

/// Where [`nibble_bounds`] writes: per row, the upper and lower ends of the interval its
/// real score lies in; per block, the lanes whose upper end reaches the threshold.
pub(super) struct NibbleBounds<'a> {
    pub upper: &'a mut [f32],
    pub lower: &'a mut [f32],
    pub flagged: &'a mut [u16],
}

/// The 4-bit pass over whole blocks laid out as `NibbleRows` describes (lane `r`'s 4 bytes
/// of group `g` at `64g + 4r`, low nibbles the group's first 4 dimensions, then the lanes'
/// steps and errors): for each row, the ends of the interval its real
/// score lies in, `estimate ± bound` with `estimate = (Σⱼ nibbleⱼ · probe[j] − offset) ·
/// step · probe step`, into `upper` and `lower`; and for each block, the lanes whose upper
/// end reaches `threshold`, into `flagged`. Every implementation gives the same values
/// (integer sums, which cannot overflow as `|Σ| ≤ 128 · 15 · 128`, then the same f32
/// operations in the same order).
pub(super) fn nibble_bounds(probe: &NibbleProbe, blocks: &[u8], threshold: f32, out: NibbleBounds<'_>) {
    let count = blocks.len() / BLOCK_STRIDE;
    assert!(blocks.len().is_multiple_of(BLOCK_STRIDE));
    assert!(out.upper.len() >= count * LANES && out.lower.len() >= count * LANES && out.flagged.len() >= count);
    #[cfg(target_arch = "x86_64")]
    if vnni::available() {
        // SAFETY: the CPU has the features `vnni::nibble_bounds` is compiled for (checked
        // just above), and the sizes it relies on were asserted.
        unsafe { vnni::nibble_bounds(probe, blocks, threshold, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU has AVX2 (checked just above), and the sizes `avx2::nibble_bounds`
        // relies on were asserted.
        unsafe { avx2::nibble_bounds(probe, blocks, threshold, out) };
        return;
    }
    portable_nibble_bounds(probe, blocks, threshold, out);
}

/// Lane `lane`'s f32 in the block's table at `at` (steps or errors).
fn lane_value(block: &[u8], at: usize, lane: usize) -> f32 {
    let at = at + lane * 4;
    f32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
}

/// The same in plain Rust.
fn portable_nibble_bounds(probe: &NibbleProbe, blocks: &[u8], threshold: f32, out: NibbleBounds<'_>) {
    let rows = out.upper.chunks_exact_mut(LANES).zip(out.lower.chunks_exact_mut(LANES));
    for (((upper, lower), flagged), block) in rows.zip(out.flagged.iter_mut()).zip(blocks.chunks_exact(BLOCK_STRIDE)) {
        let mut scores = [0i32; LANES];
        for (group, bytes) in probe.groups.iter().zip(block[..BLOCK_BYTES].chunks_exact(4 * LANES)) {
            let (low, high) = (group[0].to_le_bytes(), group[1].to_le_bytes());
            for (score, lane) in scores.iter_mut().zip(bytes.chunks_exact(4)) {
                for k in 0..4 {
                    *score += i32::from(lane[k] & 0x0F) * i32::from(low[k] as i8)
                        + i32::from(lane[k] >> 4) * i32::from(high[k] as i8);
                }
            }
        }
        *flagged = 0;
        for lane in 0..LANES {
            let estimate = (scores[lane] - probe.offset) as f32 * lane_value(block, STEPS_AT, lane) * probe.step;
            let bound = lane_value(block, ERRORS_AT, lane) * probe.error_factor + probe.error_base;
            (upper[lane], lower[lane]) = (estimate + bound, estimate - bound);
            if upper[lane] >= threshold {
                *flagged |= 1 << lane;
            }
        }
    }
}

/// Writes `Σⱼ rows[i][j] · probe[j]` into `out[i]` for every row (`rows` holds whole rows,
/// `out` has room for them). Every implementation returns the same integers: they cannot
/// overflow, as `|Σ| ≤ 128 · 255 · 128 < 2³¹`.
pub(super) fn row_scores(probe: &[i8; EMBEDDING_DIM], rows: &[u8], out: &mut [i32]) {
    assert!(rows.len().is_multiple_of(EMBEDDING_DIM) && out.len() >= rows.len() / EMBEDDING_DIM);
    #[cfg(target_arch = "x86_64")]
    if vnni::available() {
        // SAFETY: the CPU has the features `vnni::row_scores` is compiled for (checked just
        // above), and the sizes it relies on were asserted.
        unsafe { vnni::row_scores(probe, rows, out) };
        return;
    }
    portable_row_scores(probe, rows, out);
}

/// The same scores in plain Rust (16 independent i32 lanes for the compiler to vectorise).
fn portable_row_scores(probe: &[i8; EMBEDDING_DIM], rows: &[u8], out: &mut [i32]) {
    for (score, row) in out.iter_mut().zip(rows.chunks_exact(EMBEDDING_DIM)) {
        let mut acc = [0i32; 16];
        for (p, r) in probe.chunks_exact(16).zip(row.chunks_exact(16)) {
            for k in 0..16 {
                acc[k] += i32::from(p[k]) * i32::from(r[k]);
            }
        }
        *score = acc.iter().sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::{
        __m512i, _CMP_GE_OQ, _MM_HINT_T0, _mm_prefetch, _mm512_add_epi32, _mm512_add_ps, _mm512_and_si512,
        _mm512_cmp_ps_mask, _mm512_cvtepi32_ps, _mm512_dpbusd_epi32, _mm512_loadu_ps, _mm512_loadu_si512,
        _mm512_mul_ps, _mm512_reduce_add_epi32, _mm512_set1_epi8, _mm512_set1_epi32, _mm512_set1_ps,
        _mm512_setzero_si512, _mm512_srli_epi16, _mm512_storeu_ps, _mm512_sub_epi32, _mm512_sub_ps,
    };

    use super::{
        BLOCK_BYTES, BLOCK_STRIDE, EMBEDDING_DIM, ERRORS_AT, LANES, NibbleBounds, NibbleProbe, PREFETCH_AHEAD, STEPS_AT,
    };

    /// A row is two 64-byte vectors.
    const HALF: usize = EMBEDDING_DIM / 2;

    /// The standard library caches what it detected, so this is cheap per call.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI; `rows.len()` must be a multiple of
    /// [`EMBEDDING_DIM`] and `out` must have room for every row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn row_scores(probe: &[i8; EMBEDDING_DIM], rows: &[u8], out: &mut [i32]) {
        // SAFETY: the probe is EMBEDDING_DIM = 2 · 64 bytes; unaligned loads are allowed.
        let (p_low, p_high) = unsafe {
            let p = probe.as_ptr().cast::<__m512i>();
            (_mm512_loadu_si512(p), _mm512_loadu_si512(p.byte_add(HALF)))
        };
        for (score, row) in out.iter_mut().zip(rows.chunks_exact(EMBEDDING_DIM)) {
            // SAFETY: `chunks_exact` gives EMBEDDING_DIM = 2 · 64 readable bytes.
            let (low, high) = unsafe {
                let r = row.as_ptr().cast::<__m512i>();
                (_mm512_loadu_si512(r), _mm512_loadu_si512(r.byte_add(HALF)))
            };
            let acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), low, p_low);
            *score = _mm512_reduce_add_epi32(_mm512_dpbusd_epi32(acc, high, p_high));
        }
    }

    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI; the sizes must be those
    /// [`super::nibble_bounds`] asserts.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn nibble_bounds(probe: &NibbleProbe, blocks: &[u8], threshold: f32, out: NibbleBounds<'_>) {
        let nibble = _mm512_set1_epi8(0x0F);
        let words = probe.groups.map(|[low, high]| (_mm512_set1_epi32(low), _mm512_set1_epi32(high)));
        let (offset, probe_step) = (_mm512_set1_epi32(probe.offset), _mm512_set1_ps(probe.step));
        let (factor, base) = (_mm512_set1_ps(probe.error_factor), _mm512_set1_ps(probe.error_base));
        let threshold = _mm512_set1_ps(threshold);
        for (block, bytes) in blocks.chunks_exact(BLOCK_STRIDE).enumerate() {
            // Four independent sums (two groups at a time, low and high nibbles), kept in
            // registers, so the dot products do not wait on one another.
            let (mut a, mut b, mut c, mut d) =
                (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
            for (pair, words) in bytes[..BLOCK_BYTES].chunks_exact(2 * 64).zip(words.chunks_exact(2)) {
                // SAFETY: `chunks_exact` gives 2 · 64 readable bytes; unaligned loads are
                // allowed. A prefetch never faults, so its address may lie past the end.
                let (first, second) = unsafe {
                    let ahead = pair.as_ptr().wrapping_add(PREFETCH_AHEAD).cast::<i8>();
                    _mm_prefetch::<_MM_HINT_T0>(ahead);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                    let at = pair.as_ptr().cast::<__m512i>();
                    (_mm512_loadu_si512(at), _mm512_loadu_si512(at.byte_add(64)))
                };
                a = _mm512_dpbusd_epi32(a, _mm512_and_si512(first, nibble), words[0].0);
                b = _mm512_dpbusd_epi32(b, _mm512_and_si512(_mm512_srli_epi16(first, 4), nibble), words[0].1);
                c = _mm512_dpbusd_epi32(c, _mm512_and_si512(second, nibble), words[1].0);
                d = _mm512_dpbusd_epi32(d, _mm512_and_si512(_mm512_srli_epi16(second, 4), nibble), words[1].1);
            }
            let scores = _mm512_sub_epi32(_mm512_add_epi32(_mm512_add_epi32(a, b), _mm512_add_epi32(c, d)), offset);
            let at = block * LANES;
            // SAFETY: a block holds LANES f32 steps and errors at STEPS_AT and ERRORS_AT, and
            // the caller's sizes give LANES writable f32s at `at` in `upper` and `lower`,
            // one 64-byte vector each; unaligned loads and stores are allowed.
            unsafe {
                let (step, error) = (
                    _mm512_loadu_ps(bytes.as_ptr().add(STEPS_AT).cast()),
                    _mm512_loadu_ps(bytes.as_ptr().add(ERRORS_AT).cast()),
                );
                let estimate = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(scores), step), probe_step);
                let bound = _mm512_add_ps(_mm512_mul_ps(error, factor), base);
                let upper = _mm512_add_ps(estimate, bound);
                _mm512_storeu_ps(out.upper.as_mut_ptr().add(at), upper);
                _mm512_storeu_ps(out.lower.as_mut_ptr().add(at), _mm512_sub_ps(estimate, bound));
                out.flagged[block] = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(upper, threshold);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _CMP_GE_OQ, _MM_HINT_T0, _mm_prefetch, _mm256_add_epi16, _mm256_add_epi32, _mm256_add_ps,
        _mm256_and_si256, _mm256_cmp_ps, _mm256_cvtepi32_ps, _mm256_loadu_ps, _mm256_loadu_si256, _mm256_madd_epi16,
        _mm256_maddubs_epi16, _mm256_movemask_ps, _mm256_mul_ps, _mm256_set1_epi8, _mm256_set1_epi16,
        _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_si256, _mm256_srli_epi16, _mm256_storeu_ps, _mm256_sub_epi32,
        _mm256_sub_ps,
    };

    use super::{BLOCK_BYTES, BLOCK_STRIDE, ERRORS_AT, LANES, NibbleBounds, NibbleProbe, PREFETCH_AHEAD, STEPS_AT};

    /// Lanes in one 32-byte vector: half a block.
    const HALF: usize = LANES / 2;

    /// The standard library caches what it detected, so this is cheap per call.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// # Safety
    /// The CPU must have AVX2; the sizes must be those [`super::nibble_bounds`] asserts.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn nibble_bounds(probe: &NibbleProbe, blocks: &[u8], threshold: f32, out: NibbleBounds<'_>) {
        let nibble = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let words = probe.groups.map(|[low, high]| (_mm256_set1_epi32(low), _mm256_set1_epi32(high)));
        let (offset, probe_step) = (_mm256_set1_epi32(probe.offset), _mm256_set1_ps(probe.step));
        let (factor, base) = (_mm256_set1_ps(probe.error_factor), _mm256_set1_ps(probe.error_base));
        let threshold = _mm256_set1_ps(threshold);
        // Each product of a nibble (at most 15) and a probe byte is at most 1,920 in size, so
        // `vpmaddubsw`'s pairs and the sum of four of them (two groups, low and high
        // nibbles) stay far inside i16: nothing saturates.
        let group_pair = |first: __m256i, second: __m256i, words: &[(__m256i, __m256i)]| {
            let low = |v: __m256i| _mm256_and_si256(v, nibble);
            let high = |v: __m256i| _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
            let pairs = _mm256_add_epi16(
                _mm256_add_epi16(
                    _mm256_maddubs_epi16(low(first), words[0].0),
                    _mm256_maddubs_epi16(high(first), words[0].1),
                ),
                _mm256_add_epi16(
                    _mm256_maddubs_epi16(low(second), words[1].0),
                    _mm256_maddubs_epi16(high(second), words[1].1),
                ),
            );
            _mm256_madd_epi16(pairs, ones)
        };
        for (block, bytes) in blocks.chunks_exact(BLOCK_STRIDE).enumerate() {
            // Lanes 0–7 are the first 32 bytes of each group's 64, lanes 8–15 the other 32.
            let (mut first_lanes, mut last_lanes) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for (pair, words) in bytes[..BLOCK_BYTES].chunks_exact(2 * 64).zip(words.chunks_exact(2)) {
                // SAFETY: `chunks_exact` gives 2 · 64 readable bytes; unaligned loads are
                // allowed. A prefetch never faults, so its address may lie past the end.
                let [a, b, c, d] = unsafe {
                    let ahead = pair.as_ptr().wrapping_add(PREFETCH_AHEAD).cast::<i8>();
                    _mm_prefetch::<_MM_HINT_T0>(ahead);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                    let at = pair.as_ptr().cast::<__m256i>();
                    [0, 32, 64, 96].map(|offset| _mm256_loadu_si256(at.byte_add(offset)))
                };
                first_lanes = _mm256_add_epi32(first_lanes, group_pair(a, c, words));
                last_lanes = _mm256_add_epi32(last_lanes, group_pair(b, d, words));
            }
            let mut flagged = 0u16;
            for (half, sums) in [first_lanes, last_lanes].into_iter().enumerate() {
                let scores = _mm256_sub_epi32(sums, offset);
                let at = block * LANES + half * HALF;
                let lanes = half * HALF * 4;
                // SAFETY: a block holds LANES f32 steps and errors at STEPS_AT and ERRORS_AT,
                // and the caller's sizes give LANES writable f32s at `block * LANES` in
                // `upper` and `lower`: HALF of them at `at`; unaligned loads and stores are
                // allowed.
                unsafe {
                    let (step, error) = (
                        _mm256_loadu_ps(bytes.as_ptr().add(STEPS_AT + lanes).cast()),
                        _mm256_loadu_ps(bytes.as_ptr().add(ERRORS_AT + lanes).cast()),
                    );
                    // The portable loop's operations in its order (no fused multiply-add).
                    let estimate = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(scores), step), probe_step);
                    let bound = _mm256_add_ps(_mm256_mul_ps(error, factor), base);
                    let upper = _mm256_add_ps(estimate, bound);
                    _mm256_storeu_ps(out.upper.as_mut_ptr().add(at), upper);
                    _mm256_storeu_ps(out.lower.as_mut_ptr().add(at), _mm256_sub_ps(estimate, bound));
                    let reached = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(upper, threshold)) as u16;
                    flagged |= reached << (half * HALF);
                }
            }
            out.flagged[block] = flagged;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random words (xorshift64).
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// The fast path (where the CPU has it) and the portable loop agree on extreme values.
    #[test]
    fn every_implementation_gives_the_same_scores() {
        let mut next = xorshift(0x1234_5678_9ABC_DEF1u64);
        let rows_count = 300;
        let mut rows: Vec<u8> = (0..rows_count * EMBEDDING_DIM).map(|_| next() as u8).collect();
        rows[..EMBEDDING_DIM].fill(255);
        rows[EMBEDDING_DIM..2 * EMBEDDING_DIM].fill(0);
        for probe in [std::array::from_fn(|_| next() as i8), [i8::MIN; EMBEDDING_DIM], [i8::MAX; EMBEDDING_DIM]] {
            let mut fast = vec![0; rows_count];
            let mut portable = vec![0; rows_count];
            row_scores(&probe, &rows, &mut fast);
            portable_row_scores(&probe, &rows, &mut portable);
            assert_eq!(fast, portable);
            let expected: i32 = probe.iter().map(|&p| i32::from(p) * 255).sum();
            assert_eq!(fast[0], expected);
            assert_eq!(fast[1], 0);
        }
    }

    /// The same for blocks of 4-bit codes, against a dot product written from the layout,
    /// and the bounds and flags computed from those integers.
    #[test]
    fn every_nibble_implementation_gives_the_same_bounds() {
        let mut next = xorshift(0x0F1E_2D3C_4B5A_6978u64);
        let blocks_count = 3;
        let rows = blocks_count * LANES;
        let steps: Vec<f32> = (0..rows).map(|_| (next() % 1000) as f32 * 1e-4).collect();
        let errors: Vec<f32> = (0..rows).map(|_| (next() % 1000) as f32 * 1e-4).collect();
        let mut blocks = Vec::new();
        for block in 0..blocks_count {
            let mut codes: Vec<u8> = (0..BLOCK_BYTES).map(|_| next() as u8).collect();
            codes.iter_mut().step_by(4 * LANES).for_each(|b| *b = 0xFF);
            blocks.extend(codes);
            let lanes = block * LANES..(block + 1) * LANES;
            blocks.extend(steps[lanes.clone()].iter().chain(&errors[lanes]).flat_map(|v| v.to_le_bytes()));
        }
        for codes in [std::array::from_fn(|_| next() as i8), [i8::MIN; EMBEDDING_DIM], [i8::MAX; EMBEDDING_DIM]] {
            let probe = NibbleProbe::new(&codes, 8, 1.0 / 300.0, 0.01, 1e-4);
            let run = |bounds: fn(&NibbleProbe, &[u8], f32, NibbleBounds<'_>)| {
                let (mut upper, mut lower, mut flagged) = (vec![0.0; rows], vec![0.0; rows], vec![0; blocks_count]);
                let out = NibbleBounds { upper: &mut upper, lower: &mut lower, flagged: &mut flagged };
                bounds(&probe, &blocks, 0.0, out);
                (upper, lower, flagged)
            };
            let fast = run(nibble_bounds);
            assert_eq!(fast, run(portable_nibble_bounds));
            #[cfg(target_arch = "x86_64")]
            if avx2::available() {
                // SAFETY: the CPU has AVX2, and `run` passes the sizes `nibble_bounds` asserts.
                assert_eq!(fast, run(|p, b, t, o| unsafe { avx2::nibble_bounds(p, b, t, o) }), "AVX2");
            }
            let (upper, lower, flagged) = fast;
            for row in 0..rows {
                let (block, lane) = (row / LANES, row % LANES);
                let score: i32 = (0..EMBEDDING_DIM)
                    .map(|j| {
                        let byte = blocks[block * BLOCK_STRIDE + j / 8 * 4 * LANES + lane * 4 + j % 4];
                        let nibble = if j % 8 < 4 { byte & 0x0F } else { byte >> 4 };
                        (i32::from(nibble) - 8) * i32::from(codes[j])
                    })
                    .sum();
                let estimate = score as f32 * steps[row] / 300.0;
                let bound = errors[row] * 1.01 + 0.0101;
                assert!((upper[row] - (estimate + bound)).abs() < 1e-5, "row {row}");
                assert!((lower[row] - (estimate - bound)).abs() < 1e-5, "row {row}");
                assert_eq!(flagged[block] >> lane & 1 == 1, upper[row] >= 0.0, "row {row}");
            }
        }
    }
}
