//! RMSNorm over the last dimension as a candle custom op with gradients for the input and the
//! weight: `y = x · r · w` with `r = 1/sqrt(mean(x²) + eps)`.
//!
//! Backward, per row of D: `dx = r·(g⊙w) − x · r³·Σ(g⊙w⊙x)/D`; `dw = Σ_rows g⊙x·r`, summed over
//! fixed row blocks in a fixed order so it is deterministic.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu;
use super::simd::simd_dispatch;
use super::{fresh, grad_sink};

/// RMSNorm over the last dimension. x: (..., D) f32, weight: (D) f32 → (..., D).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dims().last().copied().unwrap_or(0);
    if weight.dims() != [d] {
        bail!(
            "rms_norm: x {:?} needs a weight of shape [{d}], got {:?}",
            x.dims(),
            weight.dims()
        );
    }
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
}

struct RmsNorm {
    eps: f32,
}

/// `1/sqrt(mean(x²) + eps)` of one row.
#[inline(always)]
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (cpu::dot(x, x) / x.len() as f32 + eps).sqrt()
}

/// `y = x · r · w` for rows of x (_, D), w (D).
pub(super) fn forward(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    fresh::rows_from(x.len(), d, |i, y| {
        forward_row(&x[i * d..(i + 1) * d], w, eps, y)
    })
}

simd_dispatch! {
    /// One row of [`forward`].
    fn forward_row(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
        let r = inv_rms(x, eps);
        for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
            *y = x * r * w;
        }
    }
}

simd_dispatch! {
    /// One row of dx in [`backward`].
    fn backward_row(x: &[f32], w: &[f32], g: &[f32], eps: f32, dx: &mut [f32]) {
        let d = w.len();
        let r = inv_rms(x, eps);
        let mut gw_x = 0f32;
        for ((dx, g), (w, x)) in dx.iter_mut().zip(g).zip(w.iter().zip(x)) {
            *dx = g * w;
            gw_x += *dx * x;
        }
        let c = r * r * r * gw_x / d as f32;
        for (dx, x) in dx.iter_mut().zip(x) {
            *dx = r * *dx - c * x;
        }
    }
}

simd_dispatch! {
    /// `acc += g ⊙ x · r`: one row's share of dw in [`backward`].
    fn weight_grad_row(x: &[f32], g: &[f32], eps: f32, acc: &mut [f32]) {
        let r = inv_rms(x, eps);
        for ((a, x), g) in acc.iter_mut().zip(x).zip(g) {
            *a += g * x * r;
        }
    }
}

/// `(dx, dw)` for the incoming gradient g, same shape as x (_, D).
pub(super) fn backward(xs: &[f32], ws: &[f32], gs: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = ws.len();
    let row = |i: usize| (&xs[i * d..(i + 1) * d], &gs[i * d..(i + 1) * d]);
    let dx = fresh::rows_from(xs.len(), d, |i, dx| {
        let (x, g) = row(i);
        backward_row(x, ws, g, eps, dx);
    });
    let rows = xs.len() / d.max(1);
    let dw = cpu::sum_over_rows(rows, d, d, |i, acc| {
        let (x, g) = row(i);
        weight_grad_row(x, g, eps, acc);
    });
    (dx, dw)
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "aha-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_slice(s1, l1, self.name())?;
        let w = cpu::f32_slice(s2, l2, self.name())?;
        let y = forward(x, w, self.eps);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let (dx, dw) = cpu::with_f32(x, name, |xs| {
            cpu::with_f32(w, name, |ws| {
                cpu::with_f32(g, name, |gs| {
                    let (dx, dw) = backward(xs, ws, gs, self.eps);
                    Ok((dx, dw))
                })
            })
        })?;
        Ok((
            Some(cpu::tensor_from(dx, x.shape(), x)?),
            grad_sink::deliver(w, cpu::tensor_from(dw, w.shape(), w)?),
        ))
    }
}
