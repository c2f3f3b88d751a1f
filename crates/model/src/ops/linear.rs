//! The linear layer `y = x Wᵀ + b` as one autodiff node.
//!
//! Composed from candle ops it is three nodes (`t`, `matmul`, `broadcast_add`), and the weight
//! gradient arrives transposed, so candle's backward adds it into a zero tensor with a strided
//! walk. Here the forward is a single GEMM call (the `gemm` crate candle itself uses) that starts
//! from the bias rows, and the backward is `dx = g·W`, `dW = gᵀ·x` (already in W's (out, in)
//! layout), `db = Σ_rows g`.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu;

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
        let mut y = vec![0f32; m * n];
        if let Some(b) = b {
            y.chunks_exact_mut(n).for_each(|row| row.copy_from_slice(b));
        }
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 && m * n * k > 1 << 16 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: x is (m, k) row-major, w is (n, k) row-major read as the (k, n) matrix Wᵀ with
        // row stride 1 and column stride k, y is (m, n) row-major; all three slices have exactly
        // those lengths (checked by the layouts above and the allocation), and y does not alias
        // the inputs.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                b.is_some(),
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    /// `(dx, dW, db)` for the incoming gradient g (M, out).
    fn backward(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (x, w, g) = (x.detach(), w.detach(), g.detach().contiguous()?);
        let dx = g.matmul(&w)?;
        let dw = g.t()?.matmul(&x)?;
        let db = g.sum(0)?;
        Ok((dx, dw, db))
    }
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
        let (dx, dw, _) = Self::backward(x, w, g)?;
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
        let (dx, dw, db) = Self::backward(x, w, g)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}
