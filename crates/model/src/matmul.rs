//! `y = x Wᵀ + b` without autodiff, for inference: decoding's few rows, and any number of rows
//! when the weights are stored in bf16.
//!
//! A general GEMM (candle's `gemm` crate) packs the weight matrix into panels on every call. With
//! only N ≤ [`MAX_ROWS`] rows of activations that copy is as expensive as the multiply itself,
//! and in a decode step every linear layer pays it. W (out, in) is row-major, so each output is a
//! dot product of two contiguous rows: the row kernel streams W once, computing a tile of
//! activation rows against a few weight rows in registers (AVX-512 or AVX2/FMA, chosen at run
//! time, a portable loop elsewhere; see [`Isa`]). Outputs are split across threads by weight
//! rows; each output's summation order is fixed, so results do not depend on the thread count.
//!
//! Weights may be f32 or bf16 ([`crate::decoder`] keeps an inference-only bf16 checkpoint's
//! matrices in bf16: half the memory and half the bytes a decode step streams). A bf16 value
//! widens to f32 exactly (its bits shifted up 16), so the kernels widen in registers and then
//! run the very instructions of the f32 path: a bf16 weight gives bit for bit the result of its
//! f32 widening. Above [`MAX_ROWS`] rows the weights go to the `gemm` crate in blocks of rows,
//! widened block by block into a reusable f32 scratch; f32 weights take the same blocks, so the
//! two agree exactly there too.
//!
//! Inference only: the result carries no autodiff graph. Non-f32 activations and non-CPU
//! tensors go to candle's matmul.

mod avx2;
mod avx512;
mod portable;

use candle_core::{DType, Device, Result, Storage, Tensor};
use rayon::prelude::*;

/// Above this many activation rows the GEMM's packing pays for itself. Measured on the
/// reference shape: a 64-row rollout step took 27% less time with the row kernel than with the
/// GEMM, and 128-row group decoding 8% less.
pub const MAX_ROWS: usize = 256;

/// The row kernel re-reads the activations once per few weight rows, so they must stay in L2:
/// at most this many elements (512 KB of f32).
const MAX_ROW_KERNEL_X: usize = 1 << 17;

/// Work (multiply-adds) below which splitting across threads costs more than it saves.
const PAR_MIN_WORK: usize = 1 << 17;

/// Weight elements (about 2 MB of f32) per block handed to the GEMM above [`MAX_ROWS`] rows.
const GEMM_BLOCK_ELEMS: usize = 1 << 19;

/// The instruction set the row kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// 16 f32 lanes, 8 × 3 tiles (needs AVX-512F).
    Avx512,
    /// 8 f32 lanes with FMA, 4 × 3 tiles (needs AVX2 and FMA).
    Avx2,
    /// Plain Rust, 8 independent sums per dot product.
    Portable,
}

impl Isa {
    /// The best this CPU supports (detected once: the kernels ask for every row).
    pub fn detect() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(Isa::probe)
    }

    fn probe() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Whether this CPU can run `self`.
    pub fn available(self) -> bool {
        matches!(
            (self, Isa::detect()),
            (Isa::Portable, _) | (Isa::Avx2, Isa::Avx2 | Isa::Avx512) | (Isa::Avx512, Isa::Avx512)
        )
    }
}

/// A weight matrix (N, K) as stored, borrowed from its tensor.
#[derive(Clone, Copy)]
pub(crate) enum WeightRows<'a> {
    F32(&'a [f32]),
    /// bf16 bit patterns.
    Bf16(&'a [u16]),
}

impl WeightRows<'_> {
    /// Row `j` widened into `out` (exact).
    fn widen_row(&self, j: usize, out: &mut [f32]) {
        let k = out.len();
        match self {
            WeightRows::F32(w) => out.copy_from_slice(&w[j * k..(j + 1) * k]),
            WeightRows::Bf16(w) => {
                for (o, b) in out.iter_mut().zip(&w[j * k..(j + 1) * k]) {
                    *o = widen(*b);
                }
            }
        }
    }
}

/// A bf16 bit pattern as the f32 it denotes (exact: bf16 is f32's upper half).
#[inline(always)]
pub(crate) fn widen(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `x (M, in) · wᵀ (out, in) + b (out)` → (M, out). f32 activations on the CPU take the row
/// kernel up to [`MAX_ROWS`] rows and the blocked GEMM above, with f32 or bf16 weights alike;
/// anything else goes to candle's matmul (the weight cast to x's dtype).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    let (n, k2) = w.dims2()?;
    if k != k2 {
        candle_core::bail!("linear: x has {k} features, weight expects {k2}");
    }
    let ours = matches!(x.device(), Device::Cpu)
        && x.dtype() == DType::F32
        && matches!(w.dtype(), DType::F32 | DType::BF16)
        && w.is_contiguous();
    if !ours {
        let y = x.matmul(&w.to_dtype(x.dtype())?.t()?)?;
        return match b {
            Some(b) => y.broadcast_add(&b.to_dtype(x.dtype())?),
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
        with_weights(w, |ws| multiply(Isa::detect(), xs, ws, &mut y, m, n, k))
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

/// y (M, N) = x (M, K) · w (N, K)ᵀ: the row kernel with `isa` up to [`MAX_ROWS`] rows (fewer
/// for wide inputs), the blocked GEMM above.
pub(crate) fn multiply(
    isa: Isa,
    x: &[f32],
    w: WeightRows,
    y: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    if m <= MAX_ROWS && m * k <= MAX_ROW_KERNEL_X {
        rows_times_weights(isa, x, w, y, m, n, k)
    } else {
        gemm_blocks(x, w, y, m, n, k)
    }
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

/// Run `f` on the contiguous f32 or bf16 data of a CPU weight tensor.
fn with_weights<R>(t: &Tensor, f: impl FnOnce(WeightRows) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("linear: expected a CPU weight");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("linear: expected a contiguous weight");
    };
    Ok(match t.dtype() {
        DType::BF16 => {
            let s = &cpu.as_slice::<half::bf16>()?[start..end];
            // SAFETY: half::bf16 is a transparent u16 (same size and alignment).
            let bits = unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u16>(), s.len()) };
            f(WeightRows::Bf16(bits))
        }
        _ => f(WeightRows::F32(&cpu.as_slice::<f32>()?[start..end])),
    })
}

/// A pointer to the output that threads write disjoint columns of.
#[derive(Clone, Copy)]
pub(crate) struct Out(pub(crate) *mut f32);
// SAFETY: every task writes a disjoint set of columns of y (see `rows_times_weights`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// y (M, N) = x (M, K) · w (N, K)ᵀ with the row kernel.
fn rows_times_weights(
    isa: Isa,
    x: &[f32],
    w: WeightRows,
    y: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(x.len() == m * k && y.len() == m * n, "linear: buffer sizes");
    match w {
        WeightRows::F32(w) => assert_eq!(w.len(), n * k, "linear: weight size"),
        WeightRows::Bf16(w) => assert_eq!(w.len(), n * k, "linear: weight size"),
    }
    let isa = if isa.available() { isa } else { Isa::Portable };
    let out = Out(y.as_mut_ptr());
    let threads = rayon::current_num_threads().max(1);
    // Blocks of weight rows, a multiple of the kernels' 3, about 4 per thread.
    let block = if m * n * k < PAR_MIN_WORK || threads == 1 {
        n
    } else {
        (n.div_ceil(4 * threads)).div_ceil(3) * 3
    }
    .max(3);
    let run = |j0: usize| {
        let j1 = (j0 + block).min(n);
        // SAFETY: columns j0..j1 of every row belong to this block alone; y has M·N elements,
        // x M·K and w N·K (asserted above); `isa` is available on this CPU.
        unsafe { kernel(isa, x, w, out, m, n, k, j0, j1) }
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
/// `out` points to an (M, N) buffer that no other thread writes columns j0..j1 of; x holds M·K
/// and w N·K elements; this CPU supports `isa`.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    isa: Isa,
    x: &[f32],
    w: WeightRows,
    out: Out,
    m: usize,
    n: usize,
    k: usize,
    j0: usize,
    j1: usize,
) {
    let (wp, bf16) = match w {
        WeightRows::F32(w) => (w.as_ptr().cast::<u8>(), false),
        WeightRows::Bf16(w) => (w.as_ptr().cast::<u8>(), true),
    };
    let dims = Dims { m, n, k, j0, j1 };
    match (isa, bf16) {
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, false) => avx512::block::<false>(x.as_ptr(), wp, out.0, dims),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, true) => avx512::block::<true>(x.as_ptr(), wp, out.0, dims),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, false) => avx2::block::<false>(x.as_ptr(), wp, out.0, dims),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, true) => avx2::block::<true>(x.as_ptr(), wp, out.0, dims),
        (_, false) => portable::block::<false>(x.as_ptr(), wp, out.0, dims),
        (_, true) => portable::block::<true>(x.as_ptr(), wp, out.0, dims),
    }
}

/// The problem a kernel block solves: columns j0..j1 of y (M, N) = x (M, K) · w (N, K)ᵀ.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub j0: usize,
    pub j1: usize,
}

/// Weight element `q` of the row at `p`: f32, or bf16 widened.
///
/// # Safety
/// `p` points to a row of at least q + 1 elements of the stated type.
#[inline(always)]
pub(crate) unsafe fn weight_at<const BF16: bool>(p: *const u8, q: usize) -> f32 {
    if BF16 {
        widen(*p.cast::<u16>().add(q))
    } else {
        *p.cast::<f32>().add(q)
    }
}

/// The start of weight row `j` (K elements per row).
#[inline(always)]
pub(crate) fn weight_row<const BF16: bool>(w: *const u8, j: usize, k: usize) -> *const u8 {
    let size = if BF16 { 2 } else { 4 };
    w.wrapping_add(j * k * size)
}

/// y (M, N) = x (M, K) · w (N, K)ᵀ for many rows: the `gemm` crate over blocks of weight rows,
/// each widened into a reused f32 scratch when bf16. Every weight dtype takes the same blocks,
/// so the GEMM sums in the same order for both.
fn gemm_blocks(x: &[f32], w: WeightRows, y: &mut [f32], m: usize, n: usize, k: usize) {
    let rows = (GEMM_BLOCK_ELEMS / k.max(1)).clamp(16, n.max(16)) / 16 * 16;
    let threads = rayon::current_num_threads();
    let mut scratch = match w {
        WeightRows::F32(_) => Vec::new(),
        WeightRows::Bf16(_) => vec![0f32; rows.min(n) * k],
    };
    for j0 in (0..n).step_by(rows) {
        let nb = rows.min(n - j0);
        let block: &[f32] = match w {
            WeightRows::F32(w) => &w[j0 * k..(j0 + nb) * k],
            WeightRows::Bf16(_) => {
                let s = &mut scratch[..nb * k];
                s.par_chunks_mut(k.max(1) * 16)
                    .enumerate()
                    .for_each(|(c, chunk)| {
                        for (r, row) in chunk.chunks_exact_mut(k.max(1)).enumerate() {
                            w.widen_row(j0 + c * 16 + r, row);
                        }
                    });
                s
            }
        };
        let parallelism = if threads > 1 && m * nb * k > 1 << 16 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: x is (m, k) row-major; `block` is (nb, k) row-major, read as the (k, nb)
        // matrix Bᵀ with row stride 1 and column stride k; the destination is columns
        // j0..j0+nb of y (m, n) row-major (column stride 1, row stride n), inside y's m·n
        // elements; y does not alias x or the block.
        unsafe {
            gemm::gemm(
                m,
                nb,
                k,
                y.as_mut_ptr().add(j0),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                block.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}

#[cfg(test)]
mod tests;
