//! Every op that carries a backward, on every device: one dispatch, two implementations.
//!
//! - [`fused`]: aha's CPU kernels, each a candle `CustomOp` with a hand-written backward (one pass
//!   per row forward, one kernel backward). They take f32 on the CPU only.
//! - [`generic`]: the same maths composed from candle primitives, so candle computes the backward
//!   and any device and dtype works (CUDA, bf16). Reductions (softmax, log-softmax, RMS) run in
//!   f32 whatever the activation dtype (see [`crate::precision`]).
//!
//! The functions below are what the decoder calls; each picks [`fused`] for f32 tensors on the
//! CPU and [`generic`] otherwise. `AHA_OPS=generic` in the environment forces [`generic`] on the
//! CPU too, so the CPU test suite runs exactly the code a GPU runs.
//!
//! candle-nn's own fused kernels (`softmax_last_dim`, `rms_norm`, `rope`) have no backward and
//! silently cut the gradient; only rollouts, which build no graph, may use them.
//!
//! Every function checks its shapes on entry, the same for both paths.

mod attention;
mod cpu;
mod decode_attention;
mod dense;
mod fresh;
pub mod generic;
mod grad_sink;
mod head_logprobs;
mod layer;
mod linear;
mod logprobs;
mod rms_norm;
mod rope;
mod rope_attention;
mod simd;
mod softmax;
mod swiglu;

use std::sync::OnceLock;

use candle_core::{bail, DType, Device, Result, Tensor};

/// The CPU kernels with a hand-written backward (f32 on the CPU only), callable directly so tests
/// can compare them with [`generic`] whatever `AHA_OPS` says.
pub mod fused {
    pub use super::attention::attention;
    pub use super::decode_attention::decode_attention;
    pub use super::head_logprobs::head_logprobs;
    pub use super::layer::decoder_layer;
    pub use super::linear::linear;
    pub use super::logprobs::{entropy, token_logprobs};
    pub use super::rms_norm::rms_norm;
    pub use super::rope::rope;
    pub use super::rope_attention::rope_attention;
    pub use super::softmax::softmax_last_dim;
    pub use super::swiglu::{swiglu, swiglu_packed};
}

pub use grad_sink::backward;
pub use layer::LayerWeights;
pub use rope_attention::Heads;

/// Which implementation an op runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Fused,
    Generic,
}

/// What `AHA_OPS` asks for, read once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// Unset or `auto`: fused where it applies.
    Auto,
    /// `generic`: the device-generic path everywhere.
    Generic,
}

fn choice() -> Result<Choice> {
    static CHOICE: OnceLock<std::result::Result<Choice, String>> = OnceLock::new();
    CHOICE
        .get_or_init(|| parse_choice(std::env::var("AHA_OPS").ok().as_deref()))
        .clone()
        .map_err(candle_core::Error::Msg)
}

fn parse_choice(v: Option<&str>) -> std::result::Result<Choice, String> {
    match v.map(str::trim) {
        None | Some("") | Some("auto") => Ok(Choice::Auto),
        Some("generic") => Ok(Choice::Generic),
        Some(other) => Err(format!(
            "environment variable AHA_OPS={other:?}: expected `generic` (force the \
             device-generic ops) or `auto` (fused CPU kernels where they apply)"
        )),
    }
}

/// The path ops take for tensors of `dtype` on `device` in this process.
pub fn path_for(device: &Device, dtype: DType) -> Result<Path> {
    Ok(match choice()? {
        Choice::Auto if device.is_cpu() && dtype == DType::F32 => Path::Fused,
        _ => Path::Generic,
    })
}

fn path(x: &Tensor) -> Result<Path> {
    path_for(x.device(), x.dtype())
}

/// Softmax over the last dimension, differentiable. x: (..., L) → (..., L), x's dtype.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    match path(x)? {
        Path::Fused => fused::softmax_last_dim(x),
        Path::Generic => generic::softmax_last_dim(x),
    }
}

/// RMSNorm over the last dimension. x: (..., D), weight: (D) → (..., D), x's dtype.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dims().last().copied().unwrap_or(0);
    if weight.dims() != [d] {
        bail!(
            "rms_norm: x {:?} needs a weight of shape [{d}], got {:?}",
            x.dims(),
            weight.dims()
        );
    }
    match path(x)? {
        Path::Fused if weight.dtype() == DType::F32 => fused::rms_norm(x, weight, eps),
        _ => generic::rms_norm(x, weight, eps),
    }
}

/// Rotary embedding, HF rotate-half layout. x: (N, T, H, E); cos, sin: (N, T, E/2) at each
/// token's position → (N, T, H, E).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (n, t, _h, e) = x.dims4()?;
    let half = e / 2;
    if !e.is_multiple_of(2) || cos.dims() != [n, t, half] || sin.dims() != [n, t, half] {
        bail!(
            "rope: x {:?} needs an even head dim and cos/sin ({n}, {t}, {half}), got {:?} / {:?}",
            x.dims(),
            cos.dims(),
            sin.dims()
        );
    }
    match path(x)? {
        Path::Fused => fused::rope(x, cos, sin),
        Path::Generic => generic::rope(x, cos, sin),
    }
}

/// `log softmax(logits)[target]` at every position, differentiable in `logits`, always f32.
/// logits: (N, T, V); targets: (N, T) u32 → (N, T)
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    match path(logits)? {
        Path::Fused => fused::token_logprobs(logits, targets),
        Path::Generic => generic::token_logprobs(logits, targets),
    }
}

/// The output layer and token logprobs in one: `log_softmax(h Wᵀ / T)[target]` for h (M, D), the
/// output weight w (V, D) and targets (M) u32 → logp (M), f32, with gradients to h and w; plus the
/// entropy of each row's distribution (M, no gradient) when `with_entropy`. The fused kernel never
/// holds all M × V logits at once.
pub fn head_logprobs(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (m, d) = h.dims2()?;
    let (v, d2) = w.dims2()?;
    if d != d2 || targets.dims() != [m] {
        bail!(
            "head_logprobs: h {:?} needs a weight (V, {d}) and targets ({m}), got {:?} / {:?}",
            h.dims(),
            w.dims(),
            targets.dims()
        );
    }
    if temperature.is_nan() || temperature <= 0.0 {
        bail!("head_logprobs: temperature must be positive, got {temperature}");
    }
    if path(h)? == Path::Fused && w.dtype() == DType::F32 && targets.dtype() == DType::U32 {
        let ids = targets.to_vec1::<u32>()?;
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= v) {
            bail!("head_logprobs: target id {bad} is out of range for a vocabulary of {v}");
        }
        return fused::head_logprobs(h, w, ids, temperature, with_entropy);
    }
    let mut logits = linear(h, w, None)?.to_dtype(DType::F32)?;
    if temperature != 1.0 {
        logits = (logits / temperature)?;
    }
    let logits = logits.unsqueeze(0)?;
    let logp = token_logprobs(&logits, &targets.unsqueeze(0)?)?.squeeze(0)?;
    let entropy = match with_entropy {
        true => Some(entropy(&logits)?.squeeze(0)?),
        false => None,
    };
    Ok((logp, entropy))
}

/// Entropy of the softmax at every position, no gradient, f32. logits: (..., V) → (...)
pub fn entropy(logits: &Tensor) -> Result<Tensor> {
    match path(logits)? {
        Path::Fused => fused::entropy(logits),
        Path::Generic => generic::entropy(logits),
    }
}

/// `silu(gate) ⊙ up`, elementwise; gate and up of the same shape.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        bail!(
            "swiglu: gate {:?} and up {:?} must have the same shape",
            gate.dims(),
            up.dims()
        );
    }
    match path(gate)? {
        Path::Fused if up.dtype() == DType::F32 => fused::swiglu(gate, up),
        _ => generic::swiglu(gate, up),
    }
}

/// `silu(gate) ⊙ up` on a packed projection gu (M, 2F) = [gate | up] per row → (M, F).
pub fn swiglu_packed(gu: &Tensor) -> Result<Tensor> {
    let (_m, two_f) = gu.dims2()?;
    if !two_f.is_multiple_of(2) {
        bail!("swiglu_packed: gu {:?} needs an even width", gu.dims());
    }
    match path(gu)? {
        Path::Fused => fused::swiglu_packed(gu),
        Path::Generic => generic::swiglu_packed(gu),
    }
}

/// RoPE on q and k, then grouped-query attention, over the packed projection of a whole
/// sequence. qkv: (N, S, (H + 2K)·E) = [q heads | k heads | v heads] per token; cos, sin:
/// (N, S, E/2); mask: (N or 1, 1, 1, S, S) f32 additive → (N, S, H·E), qkv's dtype.
pub fn rope_attention(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
    heads: Heads,
    scale: f64,
) -> Result<Tensor> {
    let (n, s, c) = qkv.dims3()?;
    let Heads {
        q: h,
        kv: kh,
        dim: e,
    } = heads;
    if kh == 0 || !h.is_multiple_of(kh) || !e.is_multiple_of(2) || c != (h + 2 * kh) * e {
        bail!(
            "rope_attention: qkv {:?} needs (N, S, (H + 2K)·E) for {h} query heads, {kh} key \
             heads (dividing H) and an even head dim {e}",
            qkv.dims()
        );
    }
    let half = e / 2;
    if cos.dims() != [n, s, half] || sin.dims() != [n, s, half] {
        bail!(
            "rope_attention: cos/sin must be ({n}, {s}, {half}), got {:?} / {:?}",
            cos.dims(),
            sin.dims()
        );
    }
    let nm = mask.dims().first().copied().unwrap_or(0);
    if mask.dtype() != DType::F32 || mask.dims() != [nm, 1, 1, s, s] || (nm != 1 && nm != n) {
        bail!(
            "rope_attention: mask must be f32 ({n} or 1, 1, 1, {s}, {s}), got {:?} {:?}",
            mask.dtype(),
            mask.dims()
        );
    }
    match path(qkv)? {
        Path::Fused => fused::rope_attention(qkv, cos, sin, mask, heads, scale),
        Path::Generic => generic::rope_attention(qkv, cos, sin, mask, heads, scale),
    }
}

/// Grouped-query attention with an additive mask. q: (N, S, H, E); k, v: (N, K, L, E) with H a
/// multiple of K; mask: (N or 1, 1, 1, S, L) f32 (0 visible, -1e30 hidden) → (N, S, H, E).
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
    let no_grad = !(q.track_op() || k.track_op() || v.track_op());
    match path(q)? {
        // Decoding: a few queries over the cache, no graph.
        Path::Fused if no_grad && s <= decode_attention::MAX_QUERIES && k.dtype() == DType::F32 => {
            decode_attention::decode_attention(q, k, v, mask, scale)
        }
        Path::Fused => fused::attention(q, k, v, mask, scale),
        Path::Generic => generic::attention(q, k, v, mask, scale),
    }
}

/// `x Wᵀ + b`: x (M, in), weight (out, in), bias (out) → (M, out), x's dtype. Differentiable.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (_m, k) = x.dims2()?;
    let (n, k2) = weight.dims2()?;
    if k != k2 || bias.is_some_and(|b| b.dims() != [n]) {
        bail!(
            "linear: x {:?} needs a weight (out, {k}) and bias (out), got {:?} / {:?}",
            x.dims(),
            weight.dims(),
            bias.map(|b| b.dims().to_vec())
        );
    }
    let all_f32 = weight.dtype() == DType::F32 && bias.is_none_or(|b| b.dtype() == DType::F32);
    // An inference-only model's bf16 weights (no gradient anywhere): the kernel that widens them
    // as it reads, rather than a full f32 copy of the matrix per call.
    let bf16_infer = weight.dtype() == DType::BF16 && !x.track_op() && !weight.track_op();
    match path(x)? {
        Path::Fused if all_f32 => fused::linear(x, weight, bias),
        Path::Fused if bf16_infer => crate::matmul::linear(x, weight, bias),
        _ => generic::linear(x, weight, bias),
    }
}

/// `x Wᵀ + b` for decoding (no gradient): the CPU row kernel of [`crate::matmul`] on the fused
/// path, candle's matmul on the generic one.
pub fn decode_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match path(x)? {
        Path::Fused => crate::matmul::linear(x, weight, bias),
        Path::Generic => generic::linear(&x.detach(), &weight.detach(), bias),
    }
}

/// RMSNorm for decoding (no gradient): candle-nn's fused kernel, on every device.
pub fn decode_rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let w = weight.to_dtype(x.dtype())?;
    candle_nn::ops::rms_norm(&x.contiguous()?, &w, eps as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aha_ops_values_parse() {
        assert_eq!(parse_choice(None), Ok(Choice::Auto));
        assert_eq!(parse_choice(Some("auto")), Ok(Choice::Auto));
        assert_eq!(parse_choice(Some(" generic ")), Ok(Choice::Generic));
        let err = parse_choice(Some("cuda")).unwrap_err();
        assert!(err.contains("AHA_OPS") && err.contains("generic"), "{err}");
    }

    #[test]
    fn non_f32_and_forced_generic_take_the_generic_path() {
        let forced = std::env::var("AHA_OPS").is_ok_and(|v| v.trim() == "generic");
        let f32_path = path_for(&Device::Cpu, DType::F32).unwrap();
        assert_eq!(f32_path == Path::Generic, forced);
        assert_eq!(path_for(&Device::Cpu, DType::BF16).unwrap(), Path::Generic);
    }
}
