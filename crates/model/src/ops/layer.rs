//! A whole decoder layer as one autodiff node with a hand-written backward (llm.c style).
//!
//! candle's backward gives every node's input a gradient by adding into a fresh zero tensor, so
//! each reshape, residual add and op of a composed layer costs a zero fill and an addition over
//! an activation; at the reference training shape that was ~15% of the step. Here one node runs
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
//!
//! The node's second input is an *anchor*: a one-element tensor computed from every weight by a
//! chain of [`Link`] nodes, one per weight (candle's custom ops take at most three inputs).
//! The layer reads its weights in place and its backward leaves each weight's gradient in a
//! shared slot, which the links (later in candle's backward order) hand to their weights. Stacking
//! the weights into one input instead (a `cat` of flattened weights) copied every weight at each
//! forward, held that copy (1.4 GB for a 0.5B model) until the backward, and cost two extra
//! zero-fill-and-add passes per weight gradient in candle's backward.

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::dense::{self, View};
use super::linear::column_sums;
use super::rope_attention::{self, Dims, Heads};
use super::{cpu, grad_sink, rms_norm, swiglu};

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
    let sizes = Sizes {
        d,
        he: heads.q * heads.dim,
        kve: heads.kv * heads.dim,
        f: w.gate.dim(0)?,
    };
    let (weights, slots) = w.list();
    sizes.check(&weights, &slots, heads)?;
    let grads: Arc<[cpu::Stash<Tensor>]> = weights.iter().map(|_| cpu::Stash::new()).collect();
    let anchor = anchor(&weights, &grads)?;
    let op = DecoderLayer {
        weights,
        slots,
        grads,
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
        mask: mask.contiguous()?,
        dims: Dims::new(n, s, heads, mask.dim(0)?),
        sizes,
        eps: eps as f32,
        scale: 1.0 / (heads.dim as f32).sqrt(),
        saved: cpu::Stash::new(),
    };
    x.contiguous()?.apply_op2(&anchor, op)
}

/// Where each weight sits in the layer's weight list.
#[derive(Debug, Clone, Copy)]
struct Slots {
    input_norm: usize,
    q: usize,
    k: usize,
    v: usize,
    qkv_bias: Option<[usize; 3]>,
    o: usize,
    o_bias: Option<usize>,
    post_norm: usize,
    gate: usize,
    up: usize,
    down: usize,
}

impl LayerWeights<'_> {
    /// The weights as one list (shared handles, no copies), and where each sits in it.
    fn list(&self) -> (Vec<Tensor>, Slots) {
        let mut list: Vec<Tensor> = Vec::new();
        let mut push = |t: &Tensor| {
            list.push(t.clone());
            list.len() - 1
        };
        let slots = Slots {
            input_norm: push(self.input_norm),
            q: push(self.q),
            k: push(self.k),
            v: push(self.v),
            qkv_bias: self.qkv_bias.map(|b| b.map(&mut push)),
            o: push(self.o),
            o_bias: self.o_bias.map(&mut push),
            post_norm: push(self.post_norm),
            gate: push(self.gate),
            up: push(self.up),
            down: push(self.down),
        };
        (list, slots)
    }
}

/// Hidden size, query and key/value widths (heads × head dim) and MLP width.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    d: usize,
    he: usize,
    kve: usize,
    f: usize,
}

impl Sizes {
    /// Packed q/k/v width.
    fn c(&self) -> usize {
        self.he + 2 * self.kve
    }

    /// Every weight has the shape the layer's sizes ask for, and is f32.
    fn check(&self, weights: &[Tensor], at: &Slots, heads: Heads) -> Result<()> {
        let Sizes { d, he, kve, f } = *self;
        let mut want: Vec<(&str, usize, Vec<usize>)> = vec![
            ("input_norm", at.input_norm, vec![d]),
            ("q", at.q, vec![he, d]),
            ("k", at.k, vec![kve, d]),
            ("v", at.v, vec![kve, d]),
            ("o", at.o, vec![d, he]),
            ("post_norm", at.post_norm, vec![d]),
            ("gate", at.gate, vec![f, d]),
            ("up", at.up, vec![f, d]),
            ("down", at.down, vec![d, f]),
        ];
        if let Some([q, k, v]) = at.qkv_bias {
            want.extend([
                ("q_bias", q, vec![he]),
                ("k_bias", k, vec![kve]),
                ("v_bias", v, vec![kve]),
            ]);
        }
        if let Some(b) = at.o_bias {
            want.push(("o_bias", b, vec![d]));
        }
        for (name, i, dims) in want {
            let w = &weights[i];
            if w.dims() != dims.as_slice() || w.dtype() != DType::F32 {
                bail!(
                    "decoder_layer: `{name}` is {:?} {:?}; a layer with hidden {d}, {} query and \
                     {} key heads of {} and MLP {f} needs f32 {dims:?}",
                    w.dtype(),
                    w.dims(),
                    heads.q,
                    heads.kv,
                    heads.dim
                );
            }
        }
        Ok(())
    }
}

/// A one-element tensor that depends on every weight, through one [`Link`] per weight; `grads`
/// holds each weight's gradient from the layer's backward until its link hands it on.
fn anchor(weights: &[Tensor], grads: &Arc<[cpu::Stash<Tensor>]>) -> Result<Tensor> {
    let mut at = Tensor::zeros(1, DType::F32, weights[0].device())?;
    for (weight, w) in weights.iter().enumerate() {
        let link = Link {
            weight,
            grads: grads.clone(),
        };
        at = at.apply_op2(w, link)?;
    }
    Ok(at)
}

/// One link of the anchor chain: forward, a zero; backward, the gradient the layer left for
/// weight `weight`.
struct Link {
    weight: usize,
    grads: Arc<[cpu::Stash<Tensor>]>,
}

impl CustomOp2 for Link {
    fn name(&self) -> &'static str {
        "aha-layer-link"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((CpuStorage::F32(vec![0.0]), Shape::from(1)))
    }

    fn bwd(
        &self,
        prev: &Tensor,
        weight: &Tensor,
        _: &Tensor,
        _: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = self.grads[self.weight].take(self.name())?;
        Ok((Some(prev.zeros_like()?), grad_sink::deliver(weight, grad)))
    }
}

struct DecoderLayer {
    weights: Vec<Tensor>,
    slots: Slots,
    grads: Arc<[cpu::Stash<Tensor>]>,
    cos: Tensor,
    sin: Tensor,
    mask: Tensor,
    dims: Dims,
    sizes: Sizes,
    eps: f32,
    scale: f32,
    saved: cpu::Stash<Saved>,
}

/// The forward's intermediates, (N·S, width) row-major.
struct Saved {
    /// rms(x)·w_in (D).
    a: Vec<f32>,
    /// [Wq; Wk; Wv], packed for the forward's one GEMM and reused by the backward's.
    wqkv: Vec<f32>,
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

fn threads() -> usize {
    rayon::current_num_threads()
}

/// `init + a·bᵀ` for a (m, k) and b (n, k) row-major, or `a·bᵀ` without init.
fn times_t(
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    init: Option<Vec<f32>>,
) -> Vec<f32> {
    let (a, b) = (View::rows(a, k), View::transposed(b, k));
    dense::matmul(a, b, (m, k, n), init, threads())
}

/// `init + a·b` for a (m, k) and b (k, n) row-major.
fn times(a: View, b: &[f32], (m, k, n): (usize, usize, usize), init: Option<Vec<f32>>) -> Vec<f32> {
    dense::matmul(a, View::rows(b, n), (m, k, n), init, threads())
}

/// `aᵀ·b` for a (k, m) and b (k, n) row-major: a weight gradient.
fn t_times(a: View, b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    dense::matmul(a, View::rows(b, n), (m, k, n), None, threads())
}

/// Columns `from..from + width` of a row-major matrix with `cols` columns, as (rows, width).
fn columns(data: &[f32], cols: usize, from: usize) -> View<'_> {
    View {
        data: &data[from..],
        rs: cols,
        cs: 1,
    }
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
        ws: &[&[f32]],
        cos: &[f32],
        sin: &[f32],
        mask: &[f32],
    ) -> (Vec<f32>, Saved) {
        let Sizes { d, he, f, .. } = self.sizes;
        let (at, c) = (self.slots, self.sizes.c());
        let m = x.len() / d;
        let a = rms_norm::forward(x, ws[at.input_norm], self.eps);
        let wqkv = [ws[at.q], ws[at.k], ws[at.v]].concat();
        let qkv_init = at
            .qkv_bias
            .map(|[q, k, v]| [ws[q], ws[k], ws[v]].concat().repeat(m));
        let qkv = times_t(&a, &wqkv, (m, d, c), qkv_init);
        let (o, attention) = rope_attention::forward(&qkv, cos, sin, mask, self.dims, self.scale);
        drop(qkv);
        let h_init = match at.o_bias {
            Some(b) => plus_rows(x.to_vec(), ws[b]),
            None => x.to_vec(),
        };
        let h = times_t(&o, ws[at.o], (m, he, d), Some(h_init));
        let cn = rms_norm::forward(&h, ws[at.post_norm], self.eps);
        let gate_up = [ws[at.gate], ws[at.up]].map(|w| View::transposed(w, d));
        let gu = dense::matmul_side_by_side(View::rows(&cn, d), gate_up, (m, d, f), threads());
        let u = swiglu::packed_forward(&gu, f);
        let y = times_t(&u, ws[at.down], (m, f, d), Some(h.clone()));
        let saved = Saved {
            a,
            wqkv,
            attention,
            o,
            h,
            c: cn,
            gu,
            u,
        };
        (y, saved)
    }

    /// `(dx, dweights)` for the incoming gradient `dy` (N·S, D), the weights' gradients in the
    /// order of `ws`. Each saved activation is dropped once its last use is past, so the layer's
    /// transient peak shrinks as it goes.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        s: Saved,
        x: &[f32],
        ws: &[&[f32]],
        dy: &[f32],
        cos: &[f32],
        sin: &[f32],
    ) -> (Vec<f32>, Vec<Vec<f32>>) {
        let Sizes { d, he, kve, f } = self.sizes;
        let (at, c) = (self.slots, self.sizes.c());
        let m = x.len() / d;
        let mut dw: Vec<Vec<f32>> = vec![Vec::new(); ws.len()];
        let Saved {
            a,
            wqkv,
            attention,
            o,
            h,
            c: cn,
            gu,
            u,
        } = s;

        // y = h + u·Wdᵀ
        dw[at.down] = t_times(View::transposed(dy, d), &u, (d, m, f));
        drop(u);
        let du = times(View::rows(dy, d), ws[at.down], (m, d, f), None);
        // u = swiglu([c·Wgᵀ | c·Wuᵀ])
        let dgu = swiglu::packed_backward(&gu, &du, f);
        drop((gu, du));
        // [dWg; dWu] = dguᵀ·c in one product: c is read and packed once, not once per weight.
        let mut dw_gate = t_times(View::transposed(&dgu, 2 * f), &cn, (2 * f, m, d));
        dw[at.up] = dw_gate.split_off(f * d);
        dw[at.gate] = dw_gate;
        drop(cn);
        let dc = times(columns(&dgu, 2 * f, 0), ws[at.gate], (m, f, d), None);
        let dc = times(columns(&dgu, 2 * f, f), ws[at.up], (m, f, d), Some(dc));
        drop(dgu);
        // c = rms(h)·w_post; dh collects the residual path too.
        let (mut dh, dw_post) = rms_norm::backward(&h, ws[at.post_norm], &dc, self.eps);
        drop((h, dc));
        dw[at.post_norm] = dw_post;
        dh.iter_mut().zip(dy).for_each(|(a, b)| *a += b);
        // h = x + o·Woᵀ + bo
        dw[at.o] = t_times(View::transposed(&dh, d), &o, (d, m, he));
        drop(o);
        if let Some(b) = at.o_bias {
            dw[b] = column_sums(&dh, d);
        }
        let dout = times(View::rows(&dh, d), ws[at.o], (m, d, he), None);
        // o = rope_attention(qkv), qkv = a·[Wq; Wk; Wv]ᵀ + b
        let dqkv = rope_attention::backward(&attention, &dout, cos, sin, self.dims, self.scale);
        drop((attention, dout));
        let mut dwqkv = t_times(View::transposed(&dqkv, c), &a, (c, m, d));
        drop(a);
        dw[at.v] = dwqkv[(he + kve) * d..].to_vec();
        dw[at.k] = dwqkv[he * d..(he + kve) * d].to_vec();
        dwqkv.truncate(he * d);
        dw[at.q] = dwqkv;
        if let Some([q, k, v]) = at.qkv_bias {
            let mut db = column_sums(&dqkv, c);
            dw[v] = db[he + kve..].to_vec();
            dw[k] = db[he..he + kve].to_vec();
            db.truncate(he);
            dw[q] = db;
        }
        let da = times(View::rows(&dqkv, c), &wqkv, (m, c, d), None);
        drop((dqkv, wqkv));
        // a = rms(x)·w_in
        let (mut dx, dw_in) = rms_norm::backward(x, ws[at.input_norm], &da, self.eps);
        dw[at.input_norm] = dw_in;
        dx.iter_mut().zip(&dh).for_each(|(a, b)| *a += b);
        (dx, dw)
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
        _anchor: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let x = cpu::f32_slice(s1, l1, name)?;
        let (y, saved) = cpu::with_f32_all(&self.weights, name, |ws| {
            cpu::with_f32(&self.cos, name, |c| {
                cpu::with_f32(&self.sin, name, |sn| {
                    cpu::with_f32(&self.mask, name, |m| Ok(self.forward(x, ws, c, sn, m)))
                })
            })
        })?;
        self.saved.put(saved, name)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        anchor: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let saved = self.saved.take(name)?;
        let (dx, dw) = cpu::with_f32_all(&self.weights, name, |ws| {
            cpu::with_f32(x, name, |xs| {
                cpu::with_f32(g, name, |dy| {
                    cpu::with_f32(&self.cos, name, |c| {
                        cpu::with_f32(&self.sin, name, |sn| {
                            Ok(self.backward(saved, xs, ws, dy, c, sn))
                        })
                    })
                })
            })
        })?;
        for ((g, w), slot) in dw.into_iter().zip(&self.weights).zip(self.grads.iter()) {
            slot.put(cpu::tensor_from(g, w.shape(), w)?, name)?;
        }
        Ok((
            Some(cpu::tensor_from(dx, x.shape(), x)?),
            Some(anchor.zeros_like()?),
        ))
    }
}
