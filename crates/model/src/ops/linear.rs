//! The linear layer `y = x Wᵀ + b` as one autodiff node.
//!
//! Composed from candle ops it is three nodes (`t`, `matmul`, `broadcast_add`), and the weight
//! gradient arrives transposed, so candle's backward adds it into a zero tensor with a strided
//! walk. Here the forward is a single GEMM call (the `gemm` crate candle itself uses) that starts
//! from the bias rows, and the backward is two GEMMs into fresh buffers, `dx = g·W` and
//! `dW = gᵀ·x` (already in W's (out, in) layout, gᵀ read in place), plus `db = Σ_rows g` only
//! for a layer that has a bias.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu;
use super::dense::{self, View};

/// x: (M, in), weight: (out, in), bias: (out) → (M, out); f32 on the CPU.
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
    let (x, w) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, Linear),
        None => x.apply_op2(&w, Linear),
    }
}

struct Linear;

impl Linear {
    fn forward(
        &self,
        x: &[f32],
        xl: &Layout,
        w: &[f32],
        wl: &Layout,
        b: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = xl.shape().dims2()?;
        let (n, _) = wl.shape().dims2()?;
        // The GEMM starts from the bias rows, or writes y outright.
        let init = b.map(|b| b.repeat(m));
        let y = dense::matmul(
            View::rows(x, k),
            View::transposed(w, k),
            (m, k, n),
            init,
            rayon::current_num_threads(),
        );
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    /// `dx = g·W` and `dW = gᵀ·x` for the incoming gradient g (M, out), and `db = Σ_rows g`
    /// when the layer has a bias.
    fn backward(
        x: &Tensor,
        w: &Tensor,
        g: &Tensor,
        with_bias: bool,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let (m, k) = x.dims2()?;
        let (n, _) = w.dims2()?;
        let threads = rayon::current_num_threads();
        let name = "aha-linear";
        let (dx, dw, db) = cpu::with_f32(g, name, |g| {
            let dx = cpu::with_f32(w, name, |w| {
                Ok(dense::matmul(
                    View::rows(g, n),
                    View::rows(w, k),
                    (m, n, k),
                    None,
                    threads,
                ))
            })?;
            let dw = cpu::with_f32(x, name, |x| {
                Ok(dense::matmul(
                    View::transposed(g, n),
                    View::rows(x, k),
                    (n, m, k),
                    None,
                    threads,
                ))
            })?;
            let db = with_bias.then(|| column_sums(g, n));
            Ok((dx, dw, db))
        })?;
        Ok((
            cpu::tensor_from(dx, (m, k), x)?,
            cpu::tensor_from(dw, (n, k), w)?,
            db.map(|db| cpu::tensor_from(db, n, w)).transpose()?,
        ))
    }
}

/// Σ over the rows of a row-major (_, n) matrix.
pub(super) fn column_sums(g: &[f32], n: usize) -> Vec<f32> {
    let mut acc = vec![0f32; n];
    for row in g.chunks_exact(n) {
        acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
    }
    acc
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "aha-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = CustomOp2::name(self);
        let x = cpu::f32_slice(s1, l1, name)?;
        let w = cpu::f32_slice(s2, l2, name)?;
        self.forward(x, l1, w, l2, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = Self::backward(x, w, g, false)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "aha-linear-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = CustomOp3::name(self);
        let x = cpu::f32_slice(s1, l1, name)?;
        let w = cpu::f32_slice(s2, l2, name)?;
        let b = cpu::f32_slice(s3, l3, name)?;
        self.forward(x, l1, w, l2, Some(b))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = Self::backward(x, w, g, true)?;
        Ok((Some(dx), Some(dw), db))
    }
}
