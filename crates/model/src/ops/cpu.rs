//! Plumbing shared by the CPU kernels: borrowing f32 data out of candle storage, row-parallel
//! loops with a fixed split (so results do not depend on thread timing), and a vectorisable `exp`.
//!
//! It does not decide any maths; each op's file does.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Below this many elements a kernel runs on the calling thread: rayon's dispatch costs more.
pub(crate) const PAR_MIN_ELEMS: usize = 32 * 1024;
/// Elements per rayon task (rounded to whole rows).
const PAR_CHUNK_ELEMS: usize = 16 * 1024;

/// The contiguous f32 data a kernel reads, or a clear error for other dtypes and strided layouts
/// (the public functions make their inputs contiguous before they get here).
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => bail!("{op}: expects f32 input, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!(
            "{op}: expects a contiguous input, got strides {:?}",
            l.stride()
        ),
    }
}

/// Like [`f32_slice`] for u32 index tensors.
pub(crate) fn u32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [u32]> {
    let data = match s {
        CpuStorage::U32(v) => v.as_slice(),
        other => bail!("{op}: expects u32 indices, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!(
            "{op}: expects contiguous indices, got strides {:?}",
            l.stride()
        ),
    }
}

/// What a forward keeps for its backward. The backward takes it, so a layer's activations are
/// freed as soon as its gradient is computed rather than when the whole graph is dropped: with
/// many layers the peak of a backward pass is then about the larger of the activations and the
/// gradients, not their sum. A graph can therefore be differentiated once.
pub(crate) struct Stash<T>(std::sync::Mutex<Option<T>>);

impl<T> Stash<T> {
    pub(crate) fn new() -> Self {
        Self(std::sync::Mutex::new(None))
    }

    pub(crate) fn put(&self, value: T, op: &str) -> Result<()> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            bail!("{op}: forward ran twice on one node");
        }
        *slot = Some(value);
        Ok(())
    }

    pub(crate) fn take(&self, op: &str) -> Result<T> {
        match self.take_if_kept() {
            Some(v) => Ok(v),
            None => bail!(
                "{op}: backward without a forward, or a second backward through one graph (the \
                 first released the saved activations; run the forward again)"
            ),
        }
    }

    /// The value, if the forward kept one (for what a forward keeps only sometimes).
    pub(crate) fn take_if_kept(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Run `f` on the f32 data of a CPU tensor, copying it to a contiguous layout first if needed.
/// Backward passes use this: their inputs are tensors, not storages.
pub(crate) fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(f32_slice(s, layout, op)?),
        _ => bail!(
            "{op}: backward is implemented on CPU only, not on {:?}",
            t.device()
        ),
    }
}

/// [`with_f32`] over several tensors at once (a layer's weights).
pub(crate) fn with_f32_all<R>(
    ts: &[Tensor],
    op: &str,
    f: impl FnOnce(&[&[f32]]) -> Result<R>,
) -> Result<R> {
    let ts = ts
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let reads: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(reads.len());
    for ((storage, layout), t) in reads.iter().zip(&ts) {
        match &**storage {
            Storage::Cpu(s) => slices.push(f32_slice(s, layout, op)?),
            _ => bail!("{op}: runs on the CPU only, not on {:?}", t.device()),
        }
    }
    f(&slices)
}

/// Like [`with_f32`] for u32 index tensors.
pub(crate) fn with_u32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[u32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(u32_slice(s, layout, op)?),
        _ => bail!(
            "{op}: backward is implemented on CPU only, not on {:?}",
            t.device()
        ),
    }
}

/// A new CPU f32 tensor from a kernel's output.
pub(crate) fn tensor_from(
    data: Vec<f32>,
    shape: impl Into<Shape>,
    like: &Tensor,
) -> Result<Tensor> {
    Tensor::from_vec(data, shape, like.device())
}

/// Rows of `row` elements per rayon task: about [`PAR_CHUNK_ELEMS`] elements, at least one row.
pub(crate) fn rows_per_task(row: usize) -> usize {
    (PAR_CHUNK_ELEMS / row.max(1)).max(1)
}

/// Fill `out`, viewed as rows of `row` elements, calling `f(row index, row)`; rows are split
/// across rayon tasks when there is enough work.
pub(crate) fn for_each_row(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if row == 0 {
        return;
    }
    if out.len() < PAR_MIN_ELEMS {
        out.chunks_mut(row).enumerate().for_each(|(i, r)| f(i, r));
        return;
    }
    let per = rows_per_task(row);
    out.par_chunks_mut(per * row)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (i, r) in chunk.chunks_mut(row).enumerate() {
                f(c * per + i, r)
            }
        });
}

/// One value per row of `row_len` elements: `f(row index)`, rows split across rayon tasks.
pub(crate) fn map_rows(rows: usize, row_len: usize, f: impl Fn(usize) -> f32 + Sync) -> Vec<f32> {
    if rows * row_len < PAR_MIN_ELEMS {
        return (0..rows).map(f).collect();
    }
    let per = rows_per_task(row_len);
    let mut out = vec![0f32; rows];
    out.par_chunks_mut(per).enumerate().for_each(|(c, chunk)| {
        for (k, o) in chunk.iter_mut().enumerate() {
            *o = f(c * per + k);
        }
    });
    out
}

/// Sum over rows of per-row vectors of length `width`: `f(row index, acc)` adds row `i`'s share
/// into `acc`. Partial sums are taken over fixed row blocks and added in block order, so the
/// result is the same whatever the thread count or timing.
pub(crate) fn sum_over_rows(
    rows: usize,
    width: usize,
    row_len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let per = rows_per_task(row_len);
    let partials: Vec<Vec<f32>> = (0..rows.div_ceil(per))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0f32; width];
            for i in c * per..rows.min((c + 1) * per) {
                f(i, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0f32; width];
    for p in partials {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

/// Sum with eight independent accumulators, so it vectorises (a plain fold is a serial chain).
#[inline]
pub(crate) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Dot product with eight independent accumulators.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let tail: f32 = a[n / 8 * 8..]
        .iter()
        .zip(&b[n / 8 * 8..])
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element (-inf for an empty slice), vectorisable.
#[inline]
pub(crate) fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = a.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for c in chunks {
        for k in 0..8 {
            acc[k] = if c[k] > acc[k] { c[k] } else { acc[k] };
        }
    }
    acc.iter().fold(tail, |m, &x| if x > m { x } else { m })
}

/// `exp(x)` to ~2 ulp for f32, branch-free so loops over it vectorise. Inputs below -87.3 give 0
/// (the masked scores of attention land here); inputs above 88.3 saturate at exp(88.3).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to the nearest integer with SSE2 only (no roundps needed).
    const MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.3);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    // Cephes expf polynomial on |r| ≤ ln2/2.
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let scale = f32::from_bits(((ni + 127) << 23) as u32);
    if x < -87.3 {
        0.0
    } else {
        y * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }
}
