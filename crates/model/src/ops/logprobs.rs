//! Per-token log-probabilities and entropies straight from logits, without materialising the
//! (N, T, V) log-softmax.
//!
//! [`token_logprobs`] is a custom op: forward `x[target] − logsumexp(x)` per row; backward
//! `g · (onehot(target) − softmax(x))`, recomputing the softmax row by row in one pass.
//! [`entropy`] is forward only (it is a metric, not a loss).

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::cpu;
use super::simd::simd_dispatch;

/// `log softmax(logits)[target]` at every position, differentiable in `logits`.
/// logits: (N, T, V) f32; targets: (N, T) u32 → (N, T)
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, t, _v) = logits.dims3()?;
    if targets.dims() != [n, t] || targets.dtype() != DType::U32 {
        bail!(
            "token_logprobs: logits {:?} need u32 targets ({n}, {t}), got {:?} {:?}",
            logits.dims(),
            targets.dtype(),
            targets.dims()
        );
    }
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, TokenLogprobs)
}

/// Entropy of the softmax distribution at every position, no gradient.
/// logits: (..., V) f32 → (...)
pub fn entropy(logits: &Tensor) -> Result<Tensor> {
    logits.detach().contiguous()?.apply_op1_no_bwd(&Entropy)
}

/// `(max, logsumexp)` of one row.
pub(super) fn max_lse(x: &[f32]) -> (f32, f32) {
    let mut out = (0.0, 0.0);
    max_lse_into(x, &mut out);
    out
}

simd_dispatch! {
    fn max_lse_into(x: &[f32], out: &mut (f32, f32)) {
        max_lse_body(x, out)
    }
}

simd_dispatch! {
    /// One row of the logprob gradient in place: the logits `x` become `-g · softmax(x)`, plus g
    /// at the target.
    pub(super) fn logprob_grad_in_place(x: &mut [f32], target: usize, g: f32) {
        let mut ml = (0.0, 0.0);
        max_lse_body(x, &mut ml);
        let lse = ml.1;
        for x in x.iter_mut() {
            *x = -g * cpu::exp(*x - lse);
        }
        x[target] += g;
    }
}

#[inline(always)]
fn max_lse_body(x: &[f32], out: &mut (f32, f32)) {
    let m = cpu::max(x);
    let mut tmp = [0f32; 256];
    let mut sum = 0f32;
    for chunk in x.chunks(tmp.len()) {
        let tmp = &mut tmp[..chunk.len()];
        for (e, x) in tmp.iter_mut().zip(chunk) {
            *e = cpu::exp(x - m);
        }
        sum += cpu::sum(tmp);
    }
    *out = (m, m + sum.ln());
}

struct TokenLogprobs;

impl CustomOp2 for TokenLogprobs {
    fn name(&self) -> &'static str {
        "aha-token-logprobs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_slice(s1, l1, self.name())?;
        let targets = cpu::u32_slice(s2, l2, self.name())?;
        let (n, t, v) = l1.shape().dims3()?;
        check_targets(targets, v)?;
        let out = cpu::map_rows(n * t, v, |i| {
            let row = &x[i * v..(i + 1) * v];
            row[targets[i] as usize] - max_lse(row).1
        });
        Ok((CpuStorage::F32(out), Shape::from((n, t))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let v = logits.dims3()?.2;
        let name = self.name();
        let dx = cpu::with_f32(logits, name, |x| {
            cpu::with_u32(targets, name, |tg| {
                cpu::with_f32(g, name, |g| {
                    let mut dx = vec![0f32; x.len()];
                    cpu::for_each_row(&mut dx, v, |i, dx| {
                        dx.copy_from_slice(&x[i * v..(i + 1) * v]);
                        logprob_grad_in_place(dx, tg[i] as usize, g[i]);
                    });
                    Ok(dx)
                })
            })
        })?;
        Ok((Some(cpu::tensor_from(dx, logits.shape(), logits)?), None))
    }
}

fn check_targets(targets: &[u32], v: usize) -> Result<()> {
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= v) {
        bail!("token_logprobs: target id {bad} is out of range for a vocabulary of {v}");
    }
    Ok(())
}

struct Entropy;

/// The entropy of `softmax(row)`.
pub(super) fn entropy_row(row: &[f32]) -> f32 {
    entropy_given(row, max_lse(row))
}

/// [`entropy_row`] with the row's `(max, logsumexp)` already known.
pub(super) fn entropy_given(row: &[f32], (m, lse): (f32, f32)) -> f32 {
    // H = lse − Σ p·x, computed on x − max so large logits do not cancel.
    let px: f32 = row.iter().map(|x| cpu::exp(x - lse) * (x - m)).sum();
    lse - m - px
}

impl CustomOp1 for Entropy {
    fn name(&self) -> &'static str {
        "aha-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_slice(s, l, self.name())?;
        let dims = l.dims();
        let v = dims.last().copied().unwrap_or(1);
        let out = cpu::map_rows(x.len() / v.max(1), v, |i| {
            entropy_row(&x[i * v..(i + 1) * v])
        });
        let shape = Shape::from(&dims[..dims.len().saturating_sub(1)]);
        Ok((CpuStorage::F32(out), shape))
    }
}
