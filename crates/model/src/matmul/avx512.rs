//! The row kernel with AVX-512F: tiles of up to 8 activation rows × 3 weight rows in 16-lane
//! registers (24 accumulators of the 32 registers); bf16 weights are widened in registers
//! (zero-extend, shift left 16) before the same FMAs the f32 weights get.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::{weight_at, weight_row, Dims};

/// 16 weights from `p` at element `q`, as f32.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn load16<const BF16: bool>(p: *const u8, q: usize) -> __m512 {
    if BF16 {
        let h = _mm256_loadu_si256(p.add(2 * q).cast());
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
    } else {
        _mm512_loadu_ps(p.cast::<f32>().add(q))
    }
}

/// Sum of the 16 lanes: lanes i and i+8 first, then the AVX2 kernel's 8-lane order.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn hsum(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    super::avx2::hsum(_mm256_add_ps(lo, hi))
}

/// Dot products of `R` rows of x with `C` weight rows: 16-lane FMAs over the first k/16·16
/// elements, then the scalar tail.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile<const R: usize, const C: usize, const BF16: bool>(
    xp: [*const f32; R],
    wp: [*const u8; C],
    k: usize,
) -> [[f32; C]; R] {
    let k16 = k / 16 * 16;
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut p = 0;
    while p < k16 {
        let mut wv = [_mm512_setzero_ps(); C];
        for c in 0..C {
            wv[c] = load16::<BF16>(wp[c], p);
        }
        for r in 0..R {
            let xv = _mm512_loadu_ps(xp[r].add(p));
            for c in 0..C {
                acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
            }
        }
        p += 16;
    }
    let mut res = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let mut s = hsum(acc[r][c]);
            for q in k16..k {
                s += *xp[r].add(q) * weight_at::<BF16>(wp[c], q);
            }
            res[r][c] = s;
        }
    }
    res
}

/// Columns j0..j1 of y (M, N) = x (M, K) · w (N, K)ᵀ; w is f32, or bf16 when `BF16`.
///
/// # Safety
/// As [`super::portable::block`], and the CPU has AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn block<const BF16: bool>(x: *const f32, w: *const u8, y: *mut f32, d: Dims) {
    let Dims { m, n, k, j0, j1 } = d;
    let mut j = j0;
    while j < j1 {
        let c = (j1 - j).min(3);
        let mut i = 0;
        while i < m {
            let r = match m - i {
                8.. => 8,
                4..=7 => 4,
                _ => 1,
            };
            macro_rules! run {
                ($r:literal, $c:literal) => {{
                    let xp: [*const f32; $r] = std::array::from_fn(|q| x.add((i + q) * k));
                    let wp: [*const u8; $c] =
                        std::array::from_fn(|q| weight_row::<BF16>(w, j + q, k));
                    let t = tile::<$r, $c, BF16>(xp, wp, k);
                    for q in 0..$r {
                        for s in 0..$c {
                            *y.add((i + q) * n + j + s) = t[q][s];
                        }
                    }
                }};
            }
            match (r, c) {
                (8, 3) => run!(8, 3),
                (8, 2) => run!(8, 2),
                (8, _) => run!(8, 1),
                (4, 3) => run!(4, 3),
                (4, 2) => run!(4, 2),
                (4, _) => run!(4, 1),
                (_, 3) => run!(1, 3),
                (_, 2) => run!(1, 2),
                _ => run!(1, 1),
            }
            i += r;
        }
        j += c;
    }
}
