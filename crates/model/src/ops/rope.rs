//! Rotary position embedding (HF rotate-half layout) as a candle custom op with a backward.
//!
//! Each head's first half `a` and second half `b` are rotated by the angle of the token's
//! position: `(a cos − b sin, b cos + a sin)`. The backward is the rotation by the opposite angle
//! applied to the incoming gradient. cos/sin get no gradient (they are tables, not parameters).

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu;

/// x: (N, T, H, E) f32; cos, sin: (N, T, E/2), already gathered at each token's position.
/// Returns (N, T, H, E).
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
    x.contiguous()?
        .apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope)
}

struct Rope;

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "aha-rope"
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
        let x = cpu::f32_slice(s1, l1, self.name())?;
        let cos = cpu::f32_slice(s2, l2, self.name())?;
        let sin = cpu::f32_slice(s3, l3, self.name())?;
        let (_n, _t, h, e) = l1.shape().dims4()?;
        Ok((
            CpuStorage::F32(rotate(x, cos, sin, h, e, 1.0)),
            l1.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_n, _t, h, e) = x.dims4()?;
        let name = self.name();
        let dx = cpu::with_f32(g, name, |g| {
            cpu::with_f32(cos, name, |c| {
                cpu::with_f32(sin, name, |s| Ok(rotate(g, c, s, h, e, -1.0)))
            })
        })?;
        Ok((Some(cpu::tensor_from(dx, x.shape(), x)?), None, None))
    }
}

/// Rotate every head of every token by `sign ·` its angle. x: (N·T, H, E); cos/sin: (N·T, E/2).
fn rotate(x: &[f32], cos: &[f32], sin: &[f32], h: usize, e: usize, sign: f32) -> Vec<f32> {
    let half = e / 2;
    let mut y = vec![0f32; x.len()];
    cpu::for_each_row(&mut y, h * e, |i, y| {
        let (c, s) = (
            &cos[i * half..(i + 1) * half],
            &sin[i * half..(i + 1) * half],
        );
        let x = &x[i * h * e..(i + 1) * h * e];
        for (y, x) in y.chunks_exact_mut(e).zip(x.chunks_exact(e)) {
            let (ya, yb) = y.split_at_mut(half);
            let (xa, xb) = x.split_at(half);
            for j in 0..half {
                let (a, b, c, s) = (xa[j], xb[j], c[j], sign * s[j]);
                ya[j] = a * c - b * s;
                yb[j] = b * c + a * s;
            }
        }
    });
    y
}
