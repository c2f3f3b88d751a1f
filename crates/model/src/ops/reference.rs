//! Reference versions of [`crate::ops`], composed from candle primitives: obviously correct and
//! differentiable through candle's own backward, but slow (many passes, many allocations).
//!
//! The fast custom ops are tested against these; nothing on a hot path should call them.

use candle_core::{DType, Result, Tensor, D};

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`.
/// x: (..., D), weight: (D)
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)
}

/// Rotary position embedding in HF's rotate-half layout (first half of each head paired with the
/// second half).
/// x: (N, T, H, E); cos, sin: (N, T, E/2), already gathered at each token's position.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (n, t, _h, e) = x.dims4()?;
    let half = e / 2;
    if cos.dims() != [n, t, half] || sin.dims() != [n, t, half] {
        candle_core::bail!(
            "rope: x {:?} needs cos/sin ({n}, {t}, {half}), got {:?} / {:?}",
            x.dims(),
            cos.dims(),
            sin.dims()
        );
    }
    let cos = cos.unsqueeze(2)?;
    let sin = sin.unsqueeze(2)?;
    let x1 = x.narrow(3, 0, half)?;
    let x2 = x.narrow(3, half, half)?;
    let a = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let b = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Tensor::cat(&[a, b], 3)
}

/// `log softmax(logits)[target]` at every position, differentiable in `logits`.
/// logits: (N, T, V) f32; targets: (N, T) u32 → (N, T)
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, t, _v) = logits.dims3()?;
    if targets.dims() != [n, t] || targets.dtype() != DType::U32 {
        candle_core::bail!(
            "token_logprobs: logits {:?} need u32 targets ({n}, {t}), got {:?} {:?}",
            logits.dims(),
            targets.dtype(),
            targets.dims()
        );
    }
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = shifted.gather(&targets.unsqueeze(2)?, 2)?;
    (picked - lse)?.squeeze(2)
}

/// Entropy of the softmax distribution at every position, no gradient.
/// logits: (N, T, V) → (N, T)
pub fn entropy(logits: &Tensor) -> Result<Tensor> {
    let logits = logits.detach();
    let max = logits.max_keepdim(D::Minus1)?;
    let shifted = logits.broadcast_sub(&max)?;
    let e = shifted.exp()?;
    let z = e.sum_keepdim(D::Minus1)?;
    let p = e.broadcast_div(&z)?;
    let logp = shifted.broadcast_sub(&z.log()?)?;
    (p * logp)?.sum(D::Minus1)?.neg()
}

/// `silu(gate) ⊙ up`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

/// Grouped-query attention as candle ops: q (N, S, H, E), k/v (N, K, L, E),
/// mask (N or 1, 1, 1, S, L) → (N, S, H, E).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (n, s, h, e) = q.dims4()?;
    let (_, kh, l, _) = k.dims4()?;
    let g = h / kh;
    let q = q
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, kh, g * s, e))?;
    let scores = (q.matmul(&k.t()?)? * scale)?
        .reshape((n, kh, g, s, l))?
        .broadcast_add(mask)?;
    softmax_last_dim(&scores)?
        .reshape((n, kh, g * s, l))?
        .matmul(v)?
        .reshape((n, h, s, e))?
        .transpose(1, 2)?
        .contiguous()
}

/// `x Wᵀ + b`: x (M, in), weight (out, in), bias (out).
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&weight.t()?)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}
