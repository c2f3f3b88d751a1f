//! The row kernel with AVX2 and FMA: tiles of 4 activation rows × 3 weight rows in 8-lane
//! registers; bf16 weights are widened in registers (zero-extend, shift left 16) before the
//! same FMAs the f32 weights get.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::{weight_at, weight_row, Dims};

/// 8 weights from `p` at element `q`, as f32.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load8<const BF16: bool>(p: *const u8, q: usize) -> __m256 {
    if BF16 {
        let h = _mm_loadu_si128(p.add(2 * q).cast());
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
    } else {
        _mm256_loadu_ps(p.cast::<f32>().add(q))
    }
}

/// Sum of the 8 lanes: ((0+4)+(2+6)) + ((1+5)+(3+7)).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi); // (0+4, 1+5, 2+6, 3+7)
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s)); // (0+4)+(2+6), (1+5)+(3+7)
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Dot products of `R` rows of x with `C` weight rows: 8-lane FMAs over the first k/8·8
/// elements, then the scalar tail.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize, const C: usize, const BF16: bool>(
    xp: [*const f32; R],
    wp: [*const u8; C],
    k: usize,
) -> [[f32; C]; R] {
    let k8 = k / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut p = 0;
    while p < k8 {
        let mut wv = [_mm256_setzero_ps(); C];
        for c in 0..C {
            wv[c] = load8::<BF16>(wp[c], p);
        }
        for r in 0..R {
            let xv = _mm256_loadu_ps(xp[r].add(p));
            for c in 0..C {
                acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
            }
        }
        p += 8;
    }
    let mut res = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let mut s = hsum(acc[r][c]);
            for q in k8..k {
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
/// As [`super::portable::block`], and the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block<const BF16: bool>(x: *const f32, w: *const u8, y: *mut f32, d: Dims) {
    let Dims { m, n, k, j0, j1 } = d;
    let mut j = j0;
    while j < j1 {
        let c = (j1 - j).min(3);
        let mut i = 0;
        while i < m {
            let r = if m - i >= 4 { 4 } else { 1 };
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
