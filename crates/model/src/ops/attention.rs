//! The attention core — scores, scale, additive mask, softmax, weighted values — as one autodiff
//! node, for grouped-query attention.
//!
//! Composed from candle ops, this core is a dozen graph nodes on (N, H, S, L) tensors, and candle's
//! backward allocates a zero tensor and adds into it for every node. Here the forward runs on
//! detached tensors (candle's matmuls and one fused scale+mask+softmax kernel), and a single
//! custom op carries the saved probabilities to a hand-written backward:
//! `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = scale · P ⊙ (dP − Σ dP⊙P)`, `dQ = dS·K`, `dK = dSᵀ·Q`.
//! The mask gets no gradient. Masked positions are still multiplied (no causal block skipping).

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::cpu;
use super::fresh;

/// Grouped-query attention with an additive mask.
///
/// q: (N, S, H, E) queries (after RoPE); k, v: (N, K, L, E) with H a multiple of K;
/// mask: (N or 1, 1, 1, S, L) f32, added to the scaled scores (0 = visible, -1e30 = hidden).
/// Returns (N, S, H, E). Differentiable in q, k and v when they carry gradients.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (n, s, h, e) = q.dims4()?;
    let (nk, kh, l, ek) = k.dims4()?;
    if nk != n || ek != e || kh == 0 || !h.is_multiple_of(kh) || v.dims() != k.dims() {
        bail!(
            "attention: q {:?} needs k and v (N, K, L, E) with H a multiple of K, got k {:?} v {:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let nm = mask.dims().first().copied().unwrap_or(0);
    if mask.dtype() != DType::F32 || mask.dims() != [nm, 1, 1, s, l] || (nm != 1 && nm != n) {
        bail!(
            "attention: mask must be f32 ({n} or 1, 1, 1, {s}, {l}), got {:?} {:?}",
            mask.dtype(),
            mask.dims()
        );
    }
    let g = h / kh;
    // The G query heads that share a key head are stacked along the token axis: (N, K, G·S, E).
    let qh = q
        .detach()
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, kh, g * s, e))?;
    let scores = qh.matmul(&k.detach().t()?)?; // (N, K, G·S, L)
    let probs = masked_softmax(&scores, mask, scale as f32, s)?;
    let out = probs.matmul(&v.detach())?; // (N, K, G·S, E)
    let op = Attention {
        qh,
        probs,
        out,
        scale: scale as f32,
        dims: (n, s, h, e),
    };
    q.apply_op3_arc(k, v, Arc::new(Box::new(op)))
}

struct Attention {
    /// (N, K, G·S, E)
    qh: Tensor,
    /// (N, K, G·S, L)
    probs: Tensor,
    /// (N, K, G·S, E)
    out: Tensor,
    scale: f32,
    /// (N, S, H, E)
    dims: (usize, usize, usize, usize),
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "aha-attention"
    }

    /// The output was computed in [`attention`]; this lays it out as (N, S, H, E).
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, s, h, e) = self.dims;
        let y = cpu::with_f32(&self.out, self.name(), |o| Ok(runs_to_tokens(o, s, h, e)))?;
        Ok((CpuStorage::F32(y), Shape::from(self.dims)))
    }

    fn bwd(
        &self,
        _q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, s, h, e) = self.dims;
        let kh = k.dims()[1];
        let (k, v) = (k.detach(), v.detach());
        let d_out = grad
            .detach()
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n, kh, h / kh * s, e))?; // (N, K, G·S, E)
        let dv = self.probs.t()?.matmul(&d_out)?; // (N, K, L, E)
        let dp = d_out.matmul(&v.t()?)?; // (N, K, G·S, L)
        let ds = softmax_backward(&self.probs, &dp, self.scale)?;
        let dq = ds
            .matmul(&k)?
            .reshape((n, h, s, e))?
            .transpose(1, 2)?
            .contiguous()?; // (N, S, H, E)
        let dk = ds.t()?.matmul(&self.qh)?; // (N, K, L, E)
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// (N, K, S, R) → (N, S, K·R): each token's run of R values per k, moved token-major. With
/// R = E it turns head-major attention outputs into tokens; the fused attention's (S·G, E) groups
/// are runs of R = G·E.
pub(super) fn runs_to_tokens(o: &[f32], s: usize, k: usize, r: usize) -> Vec<f32> {
    fresh::rows_from(o.len(), k * r, |row, y| {
        let (b, t) = (row / s, row % s);
        for (j, y) in y.chunks_exact_mut(r).enumerate() {
            let src = ((b * k + j) * s + t) * r;
            y.copy_from_slice(&o[src..src + r]);
        }
    })
}

/// `softmax(scale · x + mask)` over the last dim of scores (N, K, G·S, L); mask (N or 1, 1, 1, S, L)
/// is indexed by each row's batch entry and query position.
fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f32, s: usize) -> Result<Tensor> {
    let (_n, kh, gs, l) = scores.dims4()?;
    let per_batch = kh * gs;
    let mask_rows = mask.dims()[0] * s;
    let y = cpu::with_f32(scores, "attention", |x| {
        cpu::with_f32(mask, "attention", |m| {
            let y = fresh::rows_from(x.len(), l, |r, y| {
                let mrow = ((r / per_batch) * s + r % s) % mask_rows;
                let (x, m) = (&x[r * l..(r + 1) * l], &m[mrow * l..(mrow + 1) * l]);
                for ((y, x), m) in y.iter_mut().zip(x).zip(m) {
                    *y = scale * x + m;
                }
                let max = cpu::max(y);
                y.iter_mut().for_each(|y| *y = cpu::exp(*y - max));
                let inv = 1.0 / cpu::sum(y);
                y.iter_mut().for_each(|y| *y *= inv);
            });
            Ok(y)
        })
    })?;
    cpu::tensor_from(y, scores.shape(), scores)
}

/// `scale · P ⊙ (dP − Σ dP⊙P)` row by row.
fn softmax_backward(p: &Tensor, dp: &Tensor, scale: f32) -> Result<Tensor> {
    let l = p.dims().last().copied().unwrap_or(1);
    let ds = cpu::with_f32(p, "attention", |p| {
        cpu::with_f32(dp, "attention", |dp| {
            let mut ds = vec![0f32; p.len()];
            cpu::for_each_row(&mut ds, l, |r, ds| {
                let (p, dp) = (&p[r * l..(r + 1) * l], &dp[r * l..(r + 1) * l]);
                let dot = cpu::dot(p, dp);
                for ((ds, p), dp) in ds.iter_mut().zip(p).zip(dp) {
                    *ds = scale * p * (dp - dot);
                }
            });
            Ok(ds)
        })
    })?;
    cpu::tensor_from(ds, p.shape(), p)
}
