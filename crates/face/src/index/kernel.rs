//! The int8 first pass's inner loop: for each row of [`EMBEDDING_DIM`] unsigned bytes, its
//! integer dot product with a probe of signed bytes.
//!
//! The scan is limited by memory bandwidth only once each row costs a couple of
//! instructions. On CPUs with AVX-512 VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later) one
//! `vpdpbusd` multiplies and sums 64 byte pairs, so a 128-byte row takes two; that is why the
//! rows are unsigned and the probe signed (the instruction's operand types). Elsewhere a
//! portable loop gives the same integers more slowly. The choice is made at run time, so
//! one binary runs on any x86-64.
//!
//! This module is the crate's only `unsafe` code: the intrinsics read through raw pointers,
//! and calling a function compiled for features the build does not assume needs the run-time
//! check first.
#![allow(unsafe_code)]

use crate::embed::EMBEDDING_DIM;

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
        __m512i, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_reduce_add_epi32, _mm512_setzero_si512,
    };

    use super::EMBEDDING_DIM;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path (where the CPU has it) and the portable loop agree on extreme values.
    #[test]
    fn every_implementation_gives_the_same_scores() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
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
}
