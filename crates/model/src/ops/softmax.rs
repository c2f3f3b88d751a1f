//! Softmax over the last dimension as a candle custom op with a backward.
//!
//! Forward: one pass per row (max, exp and sum, scale). Backward: `dx = y ⊙ (g − Σ g⊙y)`, also
//! one kernel over rows. Masked entries (-1e30, see `kv_cache::MASKED`) come out exactly 0.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::cpu;

/// Softmax over the last dimension, differentiable. x: (..., L) f32 → (..., L).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "aha-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_slice(s, l, self.name())?;
        let d = l.dims().last().copied().unwrap_or(1);
        let mut y = vec![0f32; x.len()];
        cpu::for_each_row(&mut y, d, |i, y| softmax_row(&x[i * d..(i + 1) * d], y));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let d = y.dims().last().copied().unwrap_or(1);
        let name = self.name();
        let dx = cpu::with_f32(y, name, |y| {
            cpu::with_f32(g, name, |g| {
                let mut dx = vec![0f32; y.len()];
                cpu::for_each_row(&mut dx, d, |i, dx| {
                    let (y, g) = (&y[i * d..(i + 1) * d], &g[i * d..(i + 1) * d]);
                    let dot = cpu::dot(y, g);
                    for ((dx, y), g) in dx.iter_mut().zip(y).zip(g) {
                        *dx = y * (g - dot);
                    }
                });
                Ok(dx)
            })
        })?;
        Ok(Some(cpu::tensor_from(dx, y.shape(), y)?))
    }
}

/// `y = softmax(x)` for one row.
pub(crate) fn softmax_row(x: &[f32], y: &mut [f32]) {
    let max = cpu::max(x);
    for (y, x) in y.iter_mut().zip(x) {
        *y = cpu::exp(x - max);
    }
    let inv = 1.0 / cpu::sum(y);
    y.iter_mut().for_each(|y| *y *= inv);
}
