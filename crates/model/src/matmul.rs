//! `y = x Wᵀ + b` for the few rows of a decoding step, without packing the weights.
//!
//! A general GEMM (candle's `gemm` crate) packs the weight matrix into panels on every call. With
//! only N ≤ [`MAX_ROWS`] rows of activations that copy is as expensive as the multiply itself,
//! and in a decode step every linear layer pays it. W (out, in) is row-major, so each output is a
//! dot product of two contiguous rows: this kernel streams W once, computing 4 activation rows
//! against 3 weight rows at a time in AVX2/FMA registers (a portable loop elsewhere). Outputs are
//! split across threads by weight rows; each output's summation order is fixed, so results do
//! not depend on the thread count.
//!
//! Inference only: the result carries no autodiff graph. Larger batches and non-f32 / non-CPU
//! tensors go to candle's matmul.

use candle_core::{DType, Device, Result, Storage, Tensor};
use rayon::prelude::*;

/// Above this many activation rows the GEMM's packing pays for itself.
pub const MAX_ROWS: usize = 48;

/// Work (multiply-adds) below which splitting across threads costs more than it saves.
const PAR_MIN_WORK: usize = 1 << 17;

/// `x (M, in) · wᵀ (out, in) + b (out)` → (M, out). Uses the row kernel for M ≤ [`MAX_ROWS`]
/// f32 rows on the CPU, candle's matmul otherwise.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    let (n, k2) = w.dims2()?;
    if k != k2 {
        candle_core::bail!("linear: x has {k} features, weight expects {k2}");
    }
    let fast = m <= MAX_ROWS
        && matches!(x.device(), Device::Cpu)
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && w.is_contiguous();
    if !fast {
        let y = x.matmul(&w.t()?)?;
        return match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
    }
    let x = x.contiguous()?;
    let bias = match b {
        Some(b) => Some(b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
        None => None,
    };
    let mut y = vec![0f32; m * n];
    with_f32(&x, |xs| {
        with_f32(w, |ws| rows_times_weights(xs, ws, &mut y, m, n, k))
    })??;
    if let Some(bias) = bias {
        for row in y.chunks_exact_mut(n) {
            for (v, b) in row.iter_mut().zip(&bias) {
                *v += b;
            }
        }
    }
    Tensor::from_vec(y, (m, n), x.device())
}

/// Run `f` on the contiguous f32 data of a CPU tensor.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("linear: expected a CPU tensor");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("linear: expected a contiguous tensor");
    };
    Ok(f(&cpu.as_slice::<f32>()?[start..end]))
}

/// A pointer to the output that threads write disjoint columns of.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every task writes a disjoint set of columns of y (see `rows_times_weights`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// y (M, N) = x (M, K) · w (N, K)ᵀ.
fn rows_times_weights(x: &[f32], w: &[f32], y: &mut [f32], m: usize, n: usize, k: usize) {
    let out = Out(y.as_mut_ptr());
    let threads = rayon::current_num_threads().max(1);
    // Blocks of weight rows, a multiple of the kernel's 3, about 4 per thread.
    let block = if m * n * k < PAR_MIN_WORK || threads == 1 {
        n
    } else {
        (n.div_ceil(4 * threads)).div_ceil(3) * 3
    }
    .max(3);
    let run = |j0: usize| {
        let j1 = (j0 + block).min(n);
        // SAFETY: columns j0..j1 of every row belong to this block alone; y has M·N elements.
        unsafe { kernel(x, w, out, m, n, k, j0, j1) }
    };
    if block >= n {
        run(0);
    } else {
        (0..n)
            .step_by(block)
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each(run);
    }
}

/// Columns j0..j1 of y.
///
/// # Safety
/// `out` points to an (M, N) buffer that no other thread writes columns j0..j1 of.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    x: &[f32],
    w: &[f32],
    out: Out,
    m: usize,
    n: usize,
    k: usize,
    j0: usize,
    j1: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return avx2::block(x, w, out.0, m, n, k, j0, j1);
        }
    }
    for i in 0..m {
        for j in j0..j1 {
            *out.0.add(i * n + j) = dot(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
        }
    }
}

/// Portable dot product with 8 independent sums (vectorisable, fixed order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, at) = a.split_at(a.len() / 8 * 8);
    let (bc, bt) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in at.iter().zip(bt) {
        s += x * y;
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Sum of the 8 lanes, in the same pairing order as the portable `dot`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi); // (0+4, 1+5, 2+6, 3+7)
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s)); // (0+4)+(2+6), (1+5)+(3+7)
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Dot products of `R` rows of x with `C` rows of w over the first `k8` (a multiple of 8)
    /// elements, plus the scalar tail.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const R: usize, const C: usize>(
        xp: [*const f32; R],
        wp: [*const f32; C],
        k: usize,
    ) -> [[f32; C]; R] {
        let k8 = k / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let mut p = 0;
        while p < k8 {
            let mut wv = [_mm256_setzero_ps(); C];
            for c in 0..C {
                wv[c] = _mm256_loadu_ps(wp[c].add(p));
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
                    s += *xp[r].add(q) * *wp[c].add(q);
                }
                res[r][c] = s;
            }
        }
        res
    }

    /// Columns j0..j1 of y (M, N) = x (M, K) · w (N, K)ᵀ.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block(
        x: &[f32],
        w: &[f32],
        y: *mut f32,
        m: usize,
        n: usize,
        k: usize,
        j0: usize,
        j1: usize,
    ) {
        let xr = |i: usize| x.as_ptr().add(i * k);
        let wr = |j: usize| w.as_ptr().add(j * k);
        let mut j = j0;
        while j < j1 {
            let c = (j1 - j).min(3);
            let mut i = 0;
            while i < m {
                let r = (m - i).min(4);
                macro_rules! run {
                    ($r:literal, $c:literal) => {{
                        let xp: [*const f32; $r] = std::array::from_fn(|q| xr(i + q));
                        let wp: [*const f32; $c] = std::array::from_fn(|q| wr(j + q));
                        let t = tile::<$r, $c>(xp, wp, k);
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
                    (4, 1) => run!(4, 1),
                    (_, 3) => run!(1, 3),
                    (_, 2) => run!(1, 2),
                    _ => run!(1, 1),
                }
                i += if r == 4 { 4 } else { 1 };
            }
            j += c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_candle_matmul_on_awkward_shapes() {
        for (m, n, k) in [
            (1, 1, 1),
            (16, 688, 256),
            (5, 7, 13),
            (48, 130, 37),
            (3, 1024, 64),
            (49, 10, 8),
        ] {
            let x = Tensor::from_vec(data(m * k, 1), (m, k), &Device::Cpu).unwrap();
            let w = Tensor::from_vec(data(n * k, 2), (n, k), &Device::Cpu).unwrap();
            let b = Tensor::from_vec(data(n, 3), n, &Device::Cpu).unwrap();
            let want = x
                .matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            let got = linear(&x, &w, Some(&b)).unwrap();
            let diff = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            let diff = diff.to_scalar::<f32>().unwrap();
            assert!(
                diff < 1e-4 * (k as f32).sqrt(),
                "({m}, {n}, {k}): max |Δ| {diff}"
            );
        }
    }

    #[test]
    fn same_result_for_any_thread_count() {
        let (m, n, k) = (16, 700, 256);
        let x = Tensor::from_vec(data(m * k, 4), (m, k), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(data(n * k, 5), (n, k), &Device::Cpu).unwrap();
        let run = |t: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            pool.install(|| linear(&x, &w, None).unwrap().to_vec2::<f32>().unwrap())
        };
        assert_eq!(run(1), run(3));
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    #[test]
    #[ignore]
    fn time_it() {
        for (m, n, k) in [
            (16, 688, 256),
            (16, 256, 688),
            (16, 1024, 256),
            (16, 256, 256),
            (128, 688, 256),
            (48, 688, 256),
        ] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
            let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
            let reps = 2000;
            for (name, fast) in [("candle", false), ("rows", true)] {
                let f = || {
                    if fast {
                        linear(&x, &w, None).unwrap()
                    } else {
                        x.matmul(&w.t().unwrap()).unwrap()
                    }
                };
                for _ in 0..50 {
                    f();
                }
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    f();
                }
                let dt = t.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "{m}x{k} . {n}x{k}^T {name}: {:.1} us, {:.1} GFLOP/s",
                    dt * 1e6,
                    2.0 * (m * n * k) as f64 / dt / 1e9
                );
            }
        }
    }
}
