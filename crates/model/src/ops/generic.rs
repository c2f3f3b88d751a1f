//! The device-generic ops, composed from candle primitives: candle differentiates them, and they
//! run on any device and dtype (CUDA, bf16). This is what a GPU runs and what `AHA_OPS=generic`
//! runs on the CPU; [`super::fused`] is tested against it.
//!
//! Precision: activations keep their dtype (f32 or bf16) through matmuls and elementwise work;
//! parameters are cast to the activation's dtype at use; softmax, log-softmax, entropy and the
//! RMS statistic are computed in f32 ([`crate::precision`] holds that policy).
//!
//! When no input carries a gradient (rollouts), candle-nn's fused kernels replace the
//! compositions: they are faster and have no backward, which is then not needed.

use candle_core::{DType, Result, Tensor, D};

use crate::precision::{at_least_f32, at_use, reduce_in_f32};

/// Whether candle-nn's fused kernel may replace the composition: no input is part of an autodiff
/// graph, and the dtype is one those kernels take on every device.
fn no_grad_kernel(xs: &[&Tensor]) -> bool {
    let dtype_ok = matches!(xs[0].dtype(), DType::F32 | DType::BF16 | DType::F16);
    dtype_ok && !xs.iter().any(|x| x.track_op())
}

/// Softmax over the last dimension, differentiable, computed in f32, returned in x's dtype.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    reduce_in_f32(x, |x| {
        if no_grad_kernel(&[x]) {
            return candle_nn::ops::softmax_last_dim(&x.contiguous()?);
        }
        let max = x.max_keepdim(D::Minus1)?.detach();
        let e = x.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
    })
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`, normalised in f32 and
/// scaled by the weight in x's dtype (as transformers does).
/// x: (..., D), weight: (D)
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let w = at_use(weight, x.dtype())?;
    if no_grad_kernel(&[x, weight]) {
        return candle_nn::ops::rms_norm(&x.contiguous()?, &w, eps as f32);
    }
    let normed = reduce_in_f32(x, |x| {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps)?.sqrt()?)
    })?;
    normed.broadcast_mul(&w)
}

/// Rotary position embedding in HF's rotate-half layout (first half of each head paired with the
/// second half), in x's dtype.
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
    let cos = at_use(cos, x.dtype())?;
    let sin = at_use(sin, x.dtype())?;
    if no_grad_kernel(&[x]) {
        return candle_nn::rotary_emb::rope_thd(
            &x.contiguous()?,
            &cos.contiguous()?,
            &sin.contiguous()?,
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

/// `log softmax(logits)[target]` at every position, differentiable in `logits`, in f32 (f64 for
/// f64 logits). logits: (N, T, V); targets: (N, T) u32 → (N, T)
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, t, v) = logits.dims3()?;
    if targets.dims() != [n, t] || targets.dtype() != DType::U32 {
        candle_core::bail!(
            "token_logprobs: logits {:?} need u32 targets ({n}, {t}), got {:?} {:?}",
            logits.dims(),
            targets.dtype(),
            targets.dims()
        );
    }
    // One host read of the targets: an id past V must be an error naming it, not a gather fault.
    let top = targets.flatten_all()?.max(0)?.to_scalar::<u32>()?;
    if top as usize >= v {
        candle_core::bail!(
            "token_logprobs: target id {top} is out of range for a vocabulary of {v}"
        );
    }
    let logits = at_least_f32(logits)?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = shifted.gather(&targets.unsqueeze(2)?.contiguous()?, 2)?;
    (picked - lse)?.squeeze(2)
}

/// Entropy of the softmax distribution at every position, no gradient, in f32.
/// logits: (..., V) → (...)
pub fn entropy(logits: &Tensor) -> Result<Tensor> {
    let logits = at_least_f32(&logits.detach())?;
    let max = logits.max_keepdim(D::Minus1)?;
    let shifted = logits.broadcast_sub(&max)?;
    let e = shifted.exp()?;
    let z = e.sum_keepdim(D::Minus1)?;
    let p = e.broadcast_div(&z)?;
    let logp = shifted.broadcast_sub(&z.log()?)?;
    (p * logp)?.sum(D::Minus1)?.neg()
}

/// `silu(gate) ⊙ up`, in gate's dtype.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * at_use(up, gate.dtype())?
}

/// [`swiglu`] on a packed projection gu (M, 2F) = [gate | up] per row → (M, F).
pub fn swiglu_packed(gu: &Tensor) -> Result<Tensor> {
    let f = gu.dim(1)? / 2;
    swiglu(&gu.narrow(1, 0, f)?, &gu.narrow(1, f, f)?)
}

/// RoPE and attention over the packed projection qkv (N, S, (H + 2K)·E): split, [`rope`] on q
/// and k, [`attention`] → (N, S, H·E).
pub fn rope_attention(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
    heads: super::Heads,
    scale: f64,
) -> Result<Tensor> {
    let (n, s, _) = qkv.dims3()?;
    let super::Heads {
        q: h,
        kv: kh,
        dim: e,
    } = heads;
    let q = qkv.narrow(2, 0, h * e)?.reshape((n, s, h, e))?;
    let k = qkv.narrow(2, h * e, kh * e)?.reshape((n, s, kh, e))?;
    let v = qkv
        .narrow(2, (h + kh) * e, kh * e)?
        .reshape((n, s, kh, e))?;
    let q = rope(&q, cos, sin)?;
    let k = rope(&k, cos, sin)?.transpose(1, 2)?.contiguous()?;
    let v = v.transpose(1, 2)?.contiguous()?;
    attention(&q, &k, &v, mask, scale)?.reshape((n, s, h * e))
}

/// Grouped-query attention as candle ops: q (N, S, H, E), k/v (N, K, L, E),
/// mask (N or 1, 1, 1, S, L) f32 → (N, S, H, E) in q's dtype. Scores are scaled, masked and
/// normalised in f32; both matmuls run in q's dtype.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (n, s, h, e) = q.dims4()?;
    let (_, kh, l, _) = k.dims4()?;
    let g = h / kh;
    let dtype = q.dtype();
    let (k, v) = (at_use(k, dtype)?, at_use(v, dtype)?);
    // The G query heads that share a key head are stacked along the token axis: (N, K, G·S, E).
    let q = q
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, kh, g * s, e))?;
    let scores = q.matmul(&k.t()?)?.reshape((n, kh, g, s, l))?; // (N, K, G, S, L)
    let probs = reduce_in_f32(&scores, |x| {
        softmax_last_dim(&(x * scale)?.broadcast_add(&at_use(mask, x.dtype())?)?)
    })?;
    probs
        .reshape((n, kh, g * s, l))?
        .matmul(&v.contiguous()?)?
        .reshape((n, h, s, e))?
        .transpose(1, 2)?
        .contiguous()
}

/// `x Wᵀ + b` in x's dtype: x (M, in), weight (out, in), bias (out).
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let w = at_use(weight, x.dtype())?;
    let y = x.matmul(&w.t()?)?;
    match bias {
        Some(b) => y.broadcast_add(&at_use(b, x.dtype())?),
        None => Ok(y),
    }
}
