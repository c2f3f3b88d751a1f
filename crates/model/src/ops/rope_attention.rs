//! RoPE and grouped-query attention over the packed q/k/v projection, as one autodiff node.
//!
//! Training runs the three projections as one GEMM (`[Wq; Wk; Wv]`) and hands its output,
//! (N, S, (H + 2K)·E), to this op as is. The op rotates q and k, gathers the G query heads that
//! share a key head into one (S·G, E) block (token-major, so a block of query positions is one
//! block of rows for all G heads), and computes scores, mask, softmax and the weighted sum per
//! (sequence, key head) with single-threaded GEMMs, the groups split across threads.
//! Separate linear, rope, transpose and attention nodes cost three GEMM launches, two gradient
//! additions and six transposing copies forward and back; here there is one gather and one
//! scatter.
//!
//! Query rows go in blocks of [`QB`]; a block multiplies only the keys up to the last one any of
//! its rows may see, so a causal mask skips about half the work. The probabilities past that
//! point are exactly 0 either way (`exp` of a masked score underflows), so the result is the
//! full computation's; they are not stored. A row that sees no key at all keeps the full row, as
//! unfused softmax does.
//!
//! Backward, per group: `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = scale · P ⊙ (dP − Σ dP⊙P)`,
//! `dQ = dS·K`, `dK = dSᵀ·Q`; then dQ and dK are rotated back by −θ into the packed gradient.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::attention::runs_to_tokens;
use super::cpu;
use super::dense::{matmul_into, View};
use super::fresh::{self, Fresh};
use super::simd::simd_dispatch;
use crate::kv_cache::MASKED;

/// Query rows per block of the causal skip.
const QB: usize = 64;

/// Head counts and size of the packed projection.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Query heads H.
    pub q: usize,
    /// Key/value heads K (H is a multiple).
    pub kv: usize,
    /// Head dim E (even).
    pub dim: usize,
}

/// qkv: (N, S, (H + 2K)·E) f32, [q heads | k heads | v heads] per token; cos, sin: (N, S, E/2);
/// mask: (N or 1, 1, 1, S, S) additive → (N, S, H·E). The caller checks the shapes.
pub fn rope_attention(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
    heads: Heads,
    scale: f64,
) -> Result<Tensor> {
    let (n, s, _) = qkv.dims3()?;
    let op = RopeAttention {
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
        mask: mask.contiguous()?,
        dims: Dims::new(n, s, heads, mask.dims()[0]),
        scale: scale as f32,
        saved: cpu::Stash::new(),
    };
    qkv.contiguous()?.apply_op1(op)
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    n: usize,
    s: usize,
    h: usize,
    kh: usize,
    e: usize,
    /// Sequences the mask has rows for: N, or 1 for one mask shared by all.
    masks: usize,
}

impl Dims {
    pub(super) fn new(n: usize, s: usize, heads: Heads, masks: usize) -> Self {
        Dims {
            n,
            s,
            h: heads.q,
            kh: heads.kv,
            e: heads.dim,
            masks,
        }
    }
    fn g(&self) -> usize {
        self.h / self.kh
    }
    /// Width of a packed row.
    fn c(&self) -> usize {
        (self.h + 2 * self.kh) * self.e
    }
    fn groups(&self) -> usize {
        self.n * self.kh
    }
}

struct RopeAttention {
    cos: Tensor,
    sin: Tensor,
    mask: Tensor,
    dims: Dims,
    scale: f32,
    saved: cpu::Stash<Saved>,
}

/// What the forward keeps for the backward, per group (sequence, key head).
pub(super) struct Saved {
    /// Rotated queries (N, K, S·G, E): token-major within a group.
    q: Vec<f32>,
    /// Rotated keys and the values (N, K, S, E).
    k: Vec<f32>,
    v: Vec<f32>,
    /// Probabilities per group and block of query positions: the block's (rows, keys it
    /// needs) matrix, row-major, blocks in order. A causal mask leaves out about the upper
    /// half (a full (S·G, S) layout held zeros there).
    probs: Vec<f32>,
    /// Where each group's probabilities start in `probs`, and the end: (N·K + 1).
    probs_at: Vec<usize>,
    /// Keys each query position needs, per mask row: (masks, S).
    extent: Vec<usize>,
}

impl CustomOp1 for RopeAttention {
    fn name(&self) -> &'static str {
        "aha-rope-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::f32_slice(storage, layout, self.name())?;
        let d = self.dims;
        let (y, saved) = cpu::with_f32(&self.cos, self.name(), |c| {
            cpu::with_f32(&self.sin, self.name(), |sn| {
                cpu::with_f32(&self.mask, self.name(), |m| {
                    Ok(forward(x, c, sn, m, d, self.scale))
                })
            })
        })?;
        self.saved.put(saved, self.name())?;
        Ok((CpuStorage::F32(y), Shape::from((d.n, d.s, d.h * d.e))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let saved = self.saved.take(self.name())?;
        let dx = cpu::with_f32(grad, self.name(), |go| {
            cpu::with_f32(&self.cos, self.name(), |c| {
                cpu::with_f32(&self.sin, self.name(), |sn| {
                    Ok(backward(&saved, go, c, sn, self.dims, self.scale))
                })
            })
        })?;
        Ok(Some(cpu::tensor_from(dx, arg.shape(), arg)?))
    }
}

/// The op on slices: packed x (N·S, C) → (N·S, H·E) and what the backward needs.
pub(super) fn forward(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    mask: &[f32],
    d: Dims,
    scale: f32,
) -> (Vec<f32>, Saved) {
    let (q, k, v) = gather(x, cos, sin, d);
    let extent = extents(mask, d);
    let probs_at = probs_offsets(&extent, d);
    let (probs, out) = attend(&q, &k, &v, mask, &extent, &probs_at, d, scale);
    // (N, K, S·G, E) → (N, S, H·E): token t's G heads of key head j are one run of G·E.
    let y = runs_to_tokens(&out, d.s, d.kh, d.g() * d.e);
    let saved = Saved {
        q,
        k,
        v,
        probs,
        probs_at,
        extent,
    };
    (y, saved)
}

/// The gradient of the packed input (N·S, C) from the output's gradient `go` (N·S, H·E).
pub(super) fn backward(
    saved: &Saved,
    go: &[f32],
    cos: &[f32],
    sin: &[f32],
    d: Dims,
    scale: f32,
) -> Vec<f32> {
    let (dq, dk, dv) = attend_backward(saved, go, d, scale);
    scatter(&dq, &dk, &dv, cos, sin, d)
}

/// Rotate one head by `sign ·` its angles (HF rotate-half layout) from `src` into `dst`.
#[inline]
fn rotate(src: &[f32], dst: &mut [f32], cos: &[f32], sin: &[f32], sign: f32) {
    let half = cos.len();
    let (da, db) = dst.split_at_mut(half);
    let (sa, sb) = src.split_at(half);
    for j in 0..half {
        let (a, b, c, s) = (sa[j], sb[j], cos[j], sign * sin[j]);
        da[j] = a * c - b * s;
        db[j] = b * c + a * s;
    }
}

/// Packed (N, S, C) → rotated q (N, K, S·G, E), rotated k and v (N, K, S, E).
fn gather(x: &[f32], cos: &[f32], sin: &[f32], d: Dims) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (s, h, kh, e, g, c, half) = (d.s, d.h, d.kh, d.e, d.g(), d.c(), d.e / 2);
    let mut q = Fresh::new(d.groups() * g * s * e);
    let mut k = Fresh::new(d.groups() * s * e);
    let mut v = Fresh::new(d.groups() * s * e);
    q.pieces(g * s * e)
        .zip(k.pieces(s * e))
        .zip(v.pieces(s * e))
        .enumerate()
        .for_each(|(gi, ((qg, kg), vg))| {
            let (qg, kg, vg) = (qg.zeroed(), kg.zeroed(), vg.zeroed());
            let (b, j) = (gi / kh, gi % kh);
            for t in 0..s {
                let at = b * s + t;
                let row = &x[at * c..(at + 1) * c];
                let (cs, sn) = (
                    &cos[at * half..(at + 1) * half],
                    &sin[at * half..(at + 1) * half],
                );
                for gg in 0..g {
                    let hh = j * g + gg;
                    let dst = &mut qg[(t * g + gg) * e..(t * g + gg + 1) * e];
                    rotate(&row[hh * e..(hh + 1) * e], dst, cs, sn, 1.0);
                }
                let kcol = (h + j) * e;
                rotate(
                    &row[kcol..kcol + e],
                    &mut kg[t * e..(t + 1) * e],
                    cs,
                    sn,
                    1.0,
                );
                let vcol = (h + kh + j) * e;
                vg[t * e..(t + 1) * e].copy_from_slice(&row[vcol..vcol + e]);
            }
        });
    (q.finish(), k.finish(), v.finish())
}

/// For each mask row and query position: 1 + the last key it may see, or S if it sees none.
fn extents(mask: &[f32], d: Dims) -> Vec<usize> {
    let s = d.s;
    mask.chunks_exact(s)
        .map(|row| match row.iter().rposition(|&m| m > MASKED / 2.0) {
            Some(last) => last + 1,
            None => s,
        })
        .collect()
}

/// One block of query positions of a group: positions s0.., its rows r0..r0 + rows (all G heads),
/// the keys it needs, and where its probabilities start within the group's.
#[derive(Debug, Clone, Copy)]
struct Block {
    s0: usize,
    r0: usize,
    rows: usize,
    keys: usize,
    at: usize,
}

/// The blocks of a group that reads mask row `mb`, in order.
fn blocks(extent: &[usize], mb: usize, d: Dims) -> impl Iterator<Item = Block> + '_ {
    let (s, g) = (d.s, d.g());
    let mut at = 0;
    (0..s).step_by(QB).map(move |s0| {
        let s1 = (s0 + QB).min(s);
        let keys = extent[mb * s + s0..mb * s + s1]
            .iter()
            .copied()
            .max()
            .unwrap_or(s);
        let rows = (s1 - s0) * g;
        let block = Block {
            s0,
            r0: s0 * g,
            rows,
            keys,
            at,
        };
        at += rows * keys;
        block
    })
}

/// The mask row group `gi` reads.
fn mask_row(d: Dims, gi: usize) -> usize {
    if d.masks == 1 {
        0
    } else {
        gi / d.kh
    }
}

/// Where each group's probabilities start (and the total, last): a group holds, per block of
/// query positions, its rows × the keys the block needs.
fn probs_offsets(extent: &[usize], d: Dims) -> Vec<usize> {
    let group_len = |mb: usize| -> usize { blocks(extent, mb, d).map(|b| b.rows * b.keys).sum() };
    let lens: Vec<usize> = (0..d.masks).map(group_len).collect();
    let mut at = Vec::with_capacity(d.groups() + 1);
    at.push(0);
    for gi in 0..d.groups() {
        at.push(at[gi] + lens[mask_row(d, gi)]);
    }
    at
}

/// Probabilities (see [`Saved::probs`]) and outputs (N, K, S·G, E) from rotated q, k and v. A
/// group's rows are token-major (the G heads of token t are rows t·G..(t+1)·G), so one block of
/// query positions is one block of rows for all G heads: two GEMMs per block, not 2·G.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    extent: &[usize],
    probs_at: &[usize],
    d: Dims,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (s, e, g) = (d.s, d.e, d.g());
    let gs = g * s;
    let mut probs = Fresh::new(probs_at[d.groups()]);
    let mut out = Fresh::new(d.groups() * gs * e);
    probs
        .pieces_between(probs_at)
        .zip(out.pieces(gs * e))
        .enumerate()
        .for_each(|(gi, (pg, og))| {
            let (pg, og) = (pg.zeroed(), og.zeroed());
            let mb = mask_row(d, gi);
            let qg = &q[gi * gs * e..(gi + 1) * gs * e];
            let kg = &k[gi * s * e..(gi + 1) * s * e];
            let vg = &v[gi * s * e..(gi + 1) * s * e];
            for Block {
                s0,
                r0,
                rows,
                keys: lb,
                at,
            } in blocks(extent, mb, d)
            {
                let pb = &mut pg[at..at + rows * lb];
                let qb = View::rows(&qg[r0 * e..], e);
                let kt = View::transposed(kg, e);
                matmul_into(qb, kt, (rows, e, lb), pb, lb, false);
                for (r, p) in pb.chunks_exact_mut(lb).enumerate() {
                    let t = s0 + r / g;
                    let m = &mask[(mb * s + t) * s..(mb * s + t) * s + lb];
                    softmax_row(p, m, scale);
                }
                let (pb, ob) = (View::rows(pb, lb), &mut og[r0 * e..]);
                matmul_into(pb, View::rows(vg, e), (rows, lb, e), ob, e, false);
            }
        });
    (probs.finish(), out.finish())
}

simd_dispatch! {
    /// `softmax(scale · p + m)` in place.
    fn softmax_row(p: &mut [f32], m: &[f32], scale: f32) {
        for (p, m) in p.iter_mut().zip(m) {
            *p = scale * *p + m;
        }
        let max = cpu::max(p);
        p.iter_mut().for_each(|p| *p = cpu::exp(*p - max));
        let inv = 1.0 / cpu::sum(p);
        p.iter_mut().for_each(|p| *p *= inv);
    }
}

simd_dispatch! {
    /// The score gradient from the probability gradient, in place: `dp ← scale · p ⊙ (dp − p·dp)`.
    fn softmax_backward_row(p: &[f32], dp: &mut [f32], scale: f32) {
        let dot = cpu::dot(p, dp);
        for (dp, p) in dp.iter_mut().zip(p) {
            *dp = scale * p * (*dp - dot);
        }
    }
}

/// Gradients of the rotated q (N, K, S·G, E), rotated k and v (N, K, S, E) from the output's
/// gradient `go` (N, S, H·E), a block of query positions (all G heads) at a time.
fn attend_backward(
    saved: &Saved,
    go: &[f32],
    d: Dims,
    scale: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (s, h, kh, e, g) = (d.s, d.h, d.kh, d.e, d.g());
    let gs = g * s;
    let mut dq = Fresh::new(d.groups() * gs * e);
    let mut dk = Fresh::new(d.groups() * s * e);
    let mut dv = Fresh::new(d.groups() * s * e);
    dq.pieces(gs * e)
        .zip(dk.pieces(s * e))
        .zip(dv.pieces(s * e))
        .enumerate()
        .for_each(|(gi, ((dqg, dkg), dvg))| {
            let (dqg, dkg, dvg) = (dqg.zeroed(), dkg.zeroed(), dvg.zeroed());
            let (b, j) = (gi / kh, gi % kh);
            let mb = mask_row(d, gi);
            let qg = &saved.q[gi * gs * e..(gi + 1) * gs * e];
            let kg = &saved.k[gi * s * e..(gi + 1) * s * e];
            let vg = &saved.v[gi * s * e..(gi + 1) * s * e];
            let pg = &saved.probs[saved.probs_at[gi]..saved.probs_at[gi + 1]];
            // This group's output gradient in its (S·G, E) row order.
            let mut dog = vec![0f32; gs * e];
            for (t, rows) in dog.chunks_exact_mut(g * e).enumerate() {
                let from = ((b * s + t) * h + j * g) * e;
                rows.copy_from_slice(&go[from..from + g * e]);
            }
            let mut ds = vec![0f32; QB.min(s) * g * s];
            for Block {
                r0,
                rows,
                keys: lb,
                at,
                ..
            } in blocks(&saved.extent, mb, d)
            {
                let pb = &pg[at..at + rows * lb];
                let dout = View::rows(&dog[r0 * e..], e);
                let pt = View::transposed(pb, lb);
                matmul_into(pt, dout, (lb, rows, e), dvg, e, true);
                let vt = View::transposed(vg, e);
                matmul_into(dout, vt, (rows, e, lb), &mut ds, lb, false);
                for (p, ds) in pb.chunks_exact(lb).zip(ds.chunks_exact_mut(lb)) {
                    softmax_backward_row(p, ds, scale);
                }
                let dsb = View::rows(&ds, lb);
                let dq_rows = &mut dqg[r0 * e..];
                matmul_into(dsb, View::rows(kg, e), (rows, lb, e), dq_rows, e, false);
                let dst = View::transposed(&ds, lb);
                let qb = View::rows(&qg[r0 * e..], e);
                matmul_into(dst, qb, (lb, rows, e), dkg, e, true);
            }
        });
    (dq.finish(), dk.finish(), dv.finish())
}

/// The packed gradient (N, S, C): dq and dk rotated back by −θ, dv as is.
fn scatter(dq: &[f32], dk: &[f32], dv: &[f32], cos: &[f32], sin: &[f32], d: Dims) -> Vec<f32> {
    let (s, h, kh, e, g, c, half) = (d.s, d.h, d.kh, d.e, d.g(), d.c(), d.e / 2);
    let gs = g * s;
    fresh::rows_from(d.n * s * c, c, |at, out| {
        let (b, t) = (at / s, at % s);
        let (cs, sn) = (
            &cos[at * half..(at + 1) * half],
            &sin[at * half..(at + 1) * half],
        );
        for j in 0..kh {
            let gi = b * kh + j;
            for gg in 0..g {
                let hh = j * g + gg;
                let src = (gi * gs + t * g + gg) * e;
                rotate(
                    &dq[src..src + e],
                    &mut out[hh * e..(hh + 1) * e],
                    cs,
                    sn,
                    -1.0,
                );
            }
            let src = (gi * s + t) * e;
            let kcol = (h + j) * e;
            rotate(&dk[src..src + e], &mut out[kcol..kcol + e], cs, sn, -1.0);
            let vcol = (h + kh + j) * e;
            out[vcol..vcol + e].copy_from_slice(&dv[src..src + e]);
        }
    })
}
