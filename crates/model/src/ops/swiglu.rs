//! SwiGLU's gating, `silu(gate) ⊙ up`, as one custom op with a backward (candle's `silu` then
//! `mul` is two graph nodes and a seven-op backward on (N·T, I) tensors).
//!
//! With `σ = sigmoid(gate)`: `d_up = g ⊙ gate·σ`, `d_gate = g ⊙ up ⊙ σ·(1 + gate·(1 − σ))`.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu;
use super::fresh;
use super::simd::simd_dispatch;

/// `silu(gate) ⊙ up`, elementwise. gate, up: same shape, f32.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        bail!(
            "swiglu: gate {:?} and up {:?} must have the same shape",
            gate.dims(),
            up.dims()
        );
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

/// `silu(gate) ⊙ up` on the packed projection gu (M, 2F) = [gate | up] per row → (M, F): the
/// output of one GEMM over `[W_gate; W_up]`, whose backward is then one GEMM instead of two plus
/// a gradient addition.
pub fn swiglu_packed(gu: &Tensor) -> Result<Tensor> {
    let (_m, two_f) = gu.dims2()?;
    if !two_f.is_multiple_of(2) {
        bail!("swiglu_packed: gu {:?} needs an even width", gu.dims());
    }
    gu.contiguous()?.apply_op1(SwiGluPacked)
}

struct SwiGlu;

struct SwiGluPacked;

/// `silu(gate) ⊙ up` for rows of gu (_, 2F) = [gate | up] → (_, F).
pub(super) fn packed_forward(gu: &[f32], f: usize) -> Vec<f32> {
    fresh::rows_from(gu.len() / 2, f, |r, y| {
        let (gate, up) = gu[r * 2 * f..(r + 1) * 2 * f].split_at(f);
        gated(gate, up, y);
    })
}

simd_dispatch! {
    /// `y = silu(gate) ⊙ up` over equal-length slices.
    fn gated(gate: &[f32], up: &[f32], y: &mut [f32]) {
        for ((y, a), b) in y.iter_mut().zip(gate).zip(up) {
            *y = a * sigmoid(*a) * b;
        }
    }
}

simd_dispatch! {
    /// The gradients of [`gated`] for the incoming gradient g: `dgate` and `dup`.
    fn gated_backward(
        gate: &[f32],
        up: &[f32],
        g: &[f32],
        dgate: &mut [f32],
        dup: &mut [f32],
    ) {
        let f = gate.len();
        let (up, g, dgate, dup) = (&up[..f], &g[..f], &mut dgate[..f], &mut dup[..f]);
        for i in 0..f {
            let (a, b) = (gate[i], up[i]);
            let sg = sigmoid(a);
            dgate[i] = g[i] * b * sg * (1.0 + a * (1.0 - sg));
            dup[i] = g[i] * a * sg;
        }
    }
}

/// The gradient (_, 2F) of [`packed_forward`] for the incoming gradient g (_, F).
pub(super) fn packed_backward(gu: &[f32], g: &[f32], f: usize) -> Vec<f32> {
    let two_f = 2 * f;
    fresh::rows_from(gu.len(), two_f, |r, d| {
        let (gate, up) = gu[r * two_f..(r + 1) * two_f].split_at(f);
        let g = &g[r * f..(r + 1) * f];
        let (dgate, dup) = d.split_at_mut(f);
        gated_backward(gate, up, g, dgate, dup);
    })
}

impl CustomOp1 for SwiGluPacked {
    fn name(&self) -> &'static str {
        "aha-swiglu-packed"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let gu = cpu::f32_slice(storage, layout, self.name())?;
        let (m, two_f) = layout.shape().dims2()?;
        let (y, f) = (packed_forward(gu, two_f / 2), two_f / 2);
        Ok((CpuStorage::F32(y), Shape::from((m, f))))
    }

    fn bwd(&self, gu: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (_m, two_f) = gu.dims2()?;
        let f = two_f / 2;
        let name = self.name();
        let dgu = cpu::with_f32(gu, name, |x| {
            cpu::with_f32(g, name, |g| Ok(packed_backward(x, g, f)))
        })?;
        Ok(Some(cpu::tensor_from(dgu, gu.shape(), gu)?))
    }
}

/// Elements per row handed to the row-parallel helper (the op is elementwise).
const ROW: usize = 4096;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + cpu::exp(-x))
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "aha-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gate = cpu::f32_slice(s1, l1, self.name())?;
        let up = cpu::f32_slice(s2, l2, self.name())?;
        let mut y = vec![0f32; gate.len()];
        cpu::for_each_row(&mut y, ROW, |r, y| {
            let at = r * ROW;
            gated(&gate[at..at + y.len()], &up[at..at + y.len()], y);
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let (dgate, dup) = cpu::with_f32(gate, name, |a| {
            cpu::with_f32(up, name, |b| {
                cpu::with_f32(g, name, |g| {
                    let mut dgate = vec![0f32; a.len()];
                    let mut dup = vec![0f32; a.len()];
                    cpu::for_each_row(&mut dgate, ROW, |r, dgate| {
                        let at = r * ROW;
                        let end = at + dgate.len();
                        for (i, d) in (at..end).zip(dgate.iter_mut()) {
                            let sg = sigmoid(a[i]);
                            *d = g[i] * b[i] * sg * (1.0 + a[i] * (1.0 - sg));
                        }
                    });
                    cpu::for_each_row(&mut dup, ROW, |r, dup| {
                        let at = r * ROW;
                        let end = at + dup.len();
                        for (i, d) in (at..end).zip(dup.iter_mut()) {
                            *d = g[i] * a[i] * sigmoid(a[i]);
                        }
                    });
                    Ok((dgate, dup))
                })
            })
        })?;
        Ok((
            Some(cpu::tensor_from(dgate, gate.shape(), gate)?),
            Some(cpu::tensor_from(dup, up.shape(), up)?),
        ))
    }
}
