//! A whole decoder layer as one autodiff node with a hand-written backward (llm.c style).
//!
//! candle's backward gives every node's input a gradient by adding into a fresh zero tensor, so
//! each reshape, residual add and op of a composed layer costs a zero fill and an addition over
//! an activation; at the reference training shape that was ~15% of the step. Here the layer's
//! weights are stacked into one flat parameter vector (a `cat`, whose backward hands each weight
//! its slice), and one node runs
//!
//! ```text
//! a = rms(x)·w_in            qkv = a·Wqkvᵀ + b       o = rope_attention(qkv)
//! h = x + o·Woᵀ + bo         c = rms(h)·w_post       u = swiglu(c·[Wg; Wu]ᵀ)     y = h + u·Wdᵀ
//! ```
//!
//! keeping a, qkv's attention state, o, h, c, the gate/up projection and u for a backward that
//! walks the same lines in reverse with the kernels of the single ops ([`super::rms_norm`],
//! [`super::rope_attention`], [`super::swiglu`], GEMMs from [`super::dense`]). The residual
//! additions are folded into the GEMMs (they start from x and h).

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::dense::{self, View};
use super::linear::column_sums;
use super::rope_attention::{self, Dims, Heads};
use super::{cpu, rms_norm, swiglu};

/// One layer's weights, in HF's (out, in) layout.
pub struct LayerWeights<'a> {
    pub input_norm: &'a Tensor,
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    /// q, k and v biases: all or none.
    pub qkv_bias: Option<[&'a Tensor; 3]>,
    pub o: &'a Tensor,
    pub o_bias: Option<&'a Tensor>,
    pub post_norm: &'a Tensor,
    pub gate: &'a Tensor,
    pub up: &'a Tensor,
    pub down: &'a Tensor,
}

/// x: (N, S, D) f32 → (N, S, D); cos, sin: (N, S, E/2); mask: (N or 1, 1, 1, S, S) additive.
pub fn decoder_layer(
    x: &Tensor,
    w: &LayerWeights,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
    heads: Heads,
    eps: f64,
) -> Result<Tensor> {
    let (n, s, d) = x.dims3()?;
    let f = w.gate.dim(0)?;
    let shape = ParamShape {
        d,
        c: (heads.q + 2 * heads.kv) * heads.dim,
        he: heads.q * heads.dim,
        f,
        qkv_bias: w.qkv_bias.is_some(),
        o_bias: w.o_bias.is_some(),
    };
    let mut parts = vec![w.input_norm.clone(), flat(w.q)?, flat(w.k)?, flat(w.v)?];
    if let Some(b) = w.qkv_bias {
        parts.extend(b.iter().map(|b| (*b).clone()));
    }
    parts.push(flat(w.o)?);
    parts.extend(w.o_bias.cloned());
    parts.extend([
        w.post_norm.clone(),
        flat(w.gate)?,
        flat(w.up)?,
        flat(w.down)?,
    ]);
    let params = Tensor::cat(&parts, 0)?;
    if params.elem_count() != shape.len() {
        bail!(
            "decoder_layer: weights hold {} values, a layer with hidden {d}, {} query and {} \
             key heads of {} and MLP {f} holds {}",
            params.elem_count(),
            heads.q,
            heads.kv,
            heads.dim,
            shape.len()
        );
    }
    let op = DecoderLayer {
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
        mask: mask.contiguous()?,
        dims: Dims::new(n, s, heads, mask.dim(0)?),
        shape,
        eps: eps as f32,
        scale: 1.0 / (heads.dim as f32).sqrt(),
        saved: cpu::Stash::new(),
    };
    x.contiguous()?.apply_op2(&params, op)
}

fn flat(t: &Tensor) -> Result<Tensor> {
    t.flatten_all()
}

/// Where each weight sits in the flat parameter vector.
#[derive(Debug, Clone, Copy)]
struct ParamShape {
    d: usize,
    /// Packed q/k/v width (H + 2K)·E.
    c: usize,
    /// Attention output width H·E.
    he: usize,
    f: usize,
    qkv_bias: bool,
    o_bias: bool,
}

/// Offsets of each weight in the flat vector.
struct Offsets {
    input_norm: usize,
    qkv: usize,
    qkv_bias: Option<usize>,
    o: usize,
    o_bias: Option<usize>,
    post_norm: usize,
    gate_up: usize,
    down: usize,
    end: usize,
}

impl ParamShape {
    fn offsets(&self) -> Offsets {
        let (d, c, he, f) = (self.d, self.c, self.he, self.f);
        let qkv = d;
        let mut at = qkv + c * d;
        let qkv_bias = self.qkv_bias.then(|| {
            at += c;
            at - c
        });
        let o = at;
        at += d * he;
        let o_bias = self.o_bias.then(|| {
            at += d;
            at - d
        });
        let post_norm = at;
        let gate_up = post_norm + d;
        let down = gate_up + 2 * f * d;
        Offsets {
            input_norm: 0,
            qkv,
            qkv_bias,
            o,
            o_bias,
            post_norm,
            gate_up,
            down,
            end: down + d * f,
        }
    }

    fn len(&self) -> usize {
        self.offsets().end
    }
}

struct DecoderLayer {
    cos: Tensor,
    sin: Tensor,
    mask: Tensor,
    dims: Dims,
    shape: ParamShape,
    eps: f32,
    scale: f32,
    saved: cpu::Stash<Saved>,
}

/// The forward's intermediates, (N·S, width) row-major.
struct Saved {
    /// rms(x)·w_in (D).
    a: Vec<f32>,
    attention: rope_attention::Saved,
    /// Attention output (H·E).
    o: Vec<f32>,
    /// The residual stream after attention (D).
    h: Vec<f32>,
    /// rms(h)·w_post (D).
    c: Vec<f32>,
    /// [gate | up] projection (2F).
    gu: Vec<f32>,
    /// swiglu output (F).
    u: Vec<f32>,
}

/// `init + a·bᵀ` for a (m, k) and b (n, k) row-major, or `a·bᵀ` without init.
fn times_t(
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    init: Option<Vec<f32>>,
) -> Vec<f32> {
    let threads = rayon::current_num_threads();
    dense::matmul(
        View::rows(a, k),
        View::transposed(b, k),
        (m, k, n),
        init,
        threads,
    )
}

/// `a·b` for a (m, k) and b (k, n) row-major.
fn times(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    let threads = rayon::current_num_threads();
    dense::matmul(View::rows(a, k), View::rows(b, n), (m, k, n), None, threads)
}

/// `aᵀ·b` for a (k, m) and b (k, n) row-major: a weight gradient.
fn t_times(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    let threads = rayon::current_num_threads();
    dense::matmul(
        View::transposed(a, m),
        View::rows(b, n),
        (m, k, n),
        None,
        threads,
    )
}

/// Rows of `x` (_, n) plus a bias row.
fn plus_rows(mut x: Vec<f32>, bias: &[f32]) -> Vec<f32> {
    for row in x.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    x
}

impl DecoderLayer {
    fn forward(
        &self,
        x: &[f32],
        p: &[f32],
        cos: &[f32],
        sin: &[f32],
        mask: &[f32],
    ) -> (Vec<f32>, Saved) {
        let ParamShape { d, c, he, f, .. } = self.shape;
        let at = self.shape.offsets();
        let m = x.len() / d;
        let a = rms_norm::forward(x, &p[at.input_norm..at.input_norm + d], self.eps);
        let qkv_init = at.qkv_bias.map(|b| p[b..b + c].repeat(m));
        let qkv = times_t(&a, &p[at.qkv..at.qkv + c * d], (m, d, c), qkv_init);
        let (o, attention) = rope_attention::forward(&qkv, cos, sin, mask, self.dims, self.scale);
        let h_init = match at.o_bias {
            Some(b) => plus_rows(x.to_vec(), &p[b..b + d]),
            None => x.to_vec(),
        };
        let h = times_t(&o, &p[at.o..at.o + d * he], (m, he, d), Some(h_init));
        let cn = rms_norm::forward(&h, &p[at.post_norm..at.post_norm + d], self.eps);
        let gu = times_t(
            &cn,
            &p[at.gate_up..at.gate_up + 2 * f * d],
            (m, d, 2 * f),
            None,
        );
        let u = swiglu::packed_forward(&gu, f);
        let y = times_t(&u, &p[at.down..at.down + d * f], (m, f, d), Some(h.clone()));
        let saved = Saved {
            a,
            attention,
            o,
            h,
            c: cn,
            gu,
            u,
        };
        (y, saved)
    }

    /// `(dx, dparams)` for the incoming gradient `dy` (N·S, D). Each saved activation is dropped
    /// once its last use is past, so the layer's transient peak shrinks as it goes.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        s: Saved,
        x: &[f32],
        p: &[f32],
        dy: &[f32],
        cos: &[f32],
        sin: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let ParamShape { d, c, he, f, .. } = self.shape;
        let at = self.shape.offsets();
        let m = x.len() / d;
        let mut dp = cpu::zeros(at.end);
        let mut put = |off: usize, g: &[f32]| dp[off..off + g.len()].copy_from_slice(g);
        let Saved {
            a,
            attention,
            o,
            h,
            c: cn,
            gu,
            u,
        } = s;

        // y = h + u·Wdᵀ
        put(at.down, &t_times(dy, &u, (d, m, f)));
        drop(u);
        let du = times(dy, &p[at.down..at.down + d * f], (m, d, f));
        // u = swiglu(c·[Wg; Wu]ᵀ)
        let dgu = swiglu::packed_backward(&gu, &du, f);
        drop((gu, du));
        put(at.gate_up, &t_times(&dgu, &cn, (2 * f, m, d)));
        drop(cn);
        let dc = times(&dgu, &p[at.gate_up..at.gate_up + 2 * f * d], (m, 2 * f, d));
        drop(dgu);
        // c = rms(h)·w_post; dh collects the residual path too.
        let w_post = &p[at.post_norm..at.post_norm + d];
        let (mut dh, dw_post) = rms_norm::backward(&h, w_post, &dc, self.eps);
        drop((h, dc));
        put(at.post_norm, &dw_post);
        dh.iter_mut().zip(dy).for_each(|(a, b)| *a += b);
        // h = x + o·Woᵀ + bo
        put(at.o, &t_times(&dh, &o, (d, m, he)));
        drop(o);
        if let Some(b) = at.o_bias {
            put(b, &column_sums(&dh, d));
        }
        let dout = times(&dh, &p[at.o..at.o + d * he], (m, d, he));
        // o = rope_attention(qkv), qkv = a·Wqkvᵀ + b
        let dqkv = rope_attention::backward(&attention, &dout, cos, sin, self.dims, self.scale);
        drop((attention, dout));
        put(at.qkv, &t_times(&dqkv, &a, (c, m, d)));
        drop(a);
        if let Some(b) = at.qkv_bias {
            put(b, &column_sums(&dqkv, c));
        }
        let da = times(&dqkv, &p[at.qkv..at.qkv + c * d], (m, c, d));
        // a = rms(x)·w_in
        let w_in = &p[at.input_norm..at.input_norm + d];
        let (mut dx, dw_in) = rms_norm::backward(x, w_in, &da, self.eps);
        put(at.input_norm, &dw_in);
        dx.iter_mut().zip(&dh).for_each(|(a, b)| *a += b);
        (dx, dp)
    }
}

impl CustomOp2 for DecoderLayer {
    fn name(&self) -> &'static str {
        "aha-decoder-layer"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let x = cpu::f32_slice(s1, l1, name)?;
        let p = cpu::f32_slice(s2, l2, name)?;
        let (y, saved) = cpu::with_f32(&self.cos, name, |c| {
            cpu::with_f32(&self.sin, name, |sn| {
                cpu::with_f32(&self.mask, name, |m| Ok(self.forward(x, p, c, sn, m)))
            })
        })?;
        self.saved.put(saved, name)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let saved = self.saved.take(name)?;
        let (dx, dp) = cpu::with_f32(x, name, |xs| {
            cpu::with_f32(params, name, |p| {
                cpu::with_f32(g, name, |dy| {
                    cpu::with_f32(&self.cos, name, |c| {
                        cpu::with_f32(&self.sin, name, |sn| {
                            Ok(self.backward(saved, xs, p, dy, c, sn))
                        })
                    })
                })
            })
        })?;
        Ok((
            Some(cpu::tensor_from(dx, x.shape(), x)?),
            Some(cpu::tensor_from(dp, params.shape(), params)?),
        ))
    }
}
