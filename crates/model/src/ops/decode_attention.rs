//! Attention for a few new tokens over the KV cache, without a graph: the query heads that
//! share a kv head read its keys and values straight out of the cache buffers, once for all of
//! them.
//!
//! The training kernel ([`super::attention`]) makes the queries contiguous per head, runs two
//! batched matmuls (N·K small GEMMs each), a softmax and a layout copy: about ten allocations and
//! dispatches per layer and decode step, which cost more than the arithmetic when S is 1. Here
//! each query token's H heads are computed by one task — per kv head, the scores `q·k` of its G
//! query heads over the L cached slots, the scaled and masked softmax, the weighted sums of
//! values — so the result does not depend on how tokens are split across threads. The loops are
//! compiled for AVX-512 and AVX2 too ([`super::simd`]). Only for tensors that carry no gradient
//! (rollouts).

use candle_core::{bail, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

use super::cpu;
use super::fresh::Fresh;
use super::simd::simd_dispatch;

/// Above this many new tokens per row the batched-matmul path wins.
pub const MAX_QUERIES: usize = 4;

/// Multiply-adds per rayon task (rounded to whole query tokens).
const TASK_WORK: usize = 64 * 1024;

/// q: (N, S, H, E); k, v: (N, K, L, E), each head's slots contiguous (a narrowed cache is fine);
/// mask: (N or 1, 1, 1, S, L) f32 → (N, S, H, E). Shapes are checked by the caller
/// ([`super::attention`]).
pub fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (n, s, h, e) = q.dims4()?;
    let (_, kh, l, _) = k.dims4()?;
    let mask_rows = mask.dims()[0] * s;
    let (q, mask) = (q.contiguous()?, mask.contiguous()?);
    let (k, v) = (heads_contiguous(k)?, heads_contiguous(v)?);
    let g = h / kh;
    let mut out = Fresh::new(n * s * h * e);
    cpu::with_f32(&q, "decode_attention", |qs| {
        cpu::with_f32(&mask, "decode_attention", |ms| {
            with_strided(&k, |ks, kl| {
                with_strided(&v, |vs, vl| {
                    let cache = Cache {
                        k: ks,
                        v: vs,
                        k_stride: [kl.stride()[0], kl.stride()[1]],
                        v_stride: [vl.stride()[0], vl.stride()[1]],
                        k_start: kl.start_offset(),
                        v_start: vl.start_offset(),
                    };
                    // One task per query token: all H heads of row (b, t), G heads per pass
                    // over a kv head's keys and values.
                    let row = |bt: usize, y: &mut [f32], p: &mut Vec<f32>| {
                        let b = bt / s;
                        let mrow = bt % mask_rows;
                        let mr = &ms[mrow * l..(mrow + 1) * l];
                        for kv in 0..kh {
                            let heads = bt * h + kv * g;
                            let qg = &qs[heads * e..(heads + g) * e];
                            let yg = &mut y[kv * g * e..(kv + 1) * g * e];
                            attend_group(qg, &cache, b, kv, mr, scale as f32, e, p, yg);
                        }
                    };
                    let per_task = (TASK_WORK / (h * l * e).max(1)).max(1);
                    out.pieces(per_task * h * e)
                        .enumerate()
                        .for_each(|(c, chunk)| {
                            let mut p = Vec::new();
                            for (i, y) in chunk.zeroed().chunks_mut(h * e).enumerate() {
                                row(c * per_task + i, y, &mut p);
                            }
                        });
                    Ok(())
                })
            })
        })
    })?;
    Tensor::from_vec(out.finish(), (n, s, h, e), q.device())
}

/// The key and value buffers of the cache with the strides of their batch and head axes.
struct Cache<'a> {
    k: &'a [f32],
    v: &'a [f32],
    k_stride: [usize; 2],
    v_stride: [usize; 2],
    k_start: usize,
    v_start: usize,
}

simd_dispatch! {
    /// `y_g = softmax(scale · K q_g + mask) V` for the G query heads `q` (G·E) that share kv
    /// head `kv` of batch row `b`: each key and value row is read once for the G heads.
    /// `p` is scratch for the G·L scores.
    fn attend_group(
        q: &[f32],
        c: &Cache<'_>,
        b: usize,
        kv: usize,
        mask: &[f32],
        scale: f32,
        e: usize,
        p: &mut Vec<f32>,
        y: &mut [f32],
    ) {
        let l = mask.len();
        let g = q.len() / e;
        let k0 = c.k_start + b * c.k_stride[0] + kv * c.k_stride[1];
        let v0 = c.v_start + b * c.v_stride[0] + kv * c.v_stride[1];
        let keys = &c.k[k0..k0 + l * e];
        let values = &c.v[v0..v0 + l * e];
        p.clear();
        p.resize(g * l, 0.0);
        for (j, kr) in keys.chunks_exact(e).enumerate() {
            for (h, qh) in q.chunks_exact(e).enumerate() {
                p[h * l + j] = scale * cpu::dot(qh, kr) + mask[j];
            }
        }
        for ph in p.chunks_exact_mut(l) {
            let max = cpu::max(ph);
            ph.iter_mut().for_each(|x| *x = cpu::exp(*x - max));
            let inv = 1.0 / cpu::sum(ph);
            ph.iter_mut().for_each(|x| *x *= inv);
        }
        // y_h = Σ_j p_hj v_j, summed over j in order; all of a head's columns at once in registers
        // (independent sums, so they overlap) when E is 16, 32, 64 or 128.
        for (h, yh) in y.chunks_exact_mut(e).enumerate() {
            let ph = &p[h * l..(h + 1) * l];
            match e {
                16 => weighted_sum::<1>(ph, values, yh),
                32 => weighted_sum::<2>(ph, values, yh),
                64 => weighted_sum::<4>(ph, values, yh),
                128 => weighted_sum::<8>(ph, values, yh),
                _ => {
                    yh.iter_mut().for_each(|y| *y = 0.0);
                    for (&w, vr) in ph.iter().zip(values.chunks_exact(e)) {
                        for (y, v) in yh.iter_mut().zip(vr) {
                            *y += w * v;
                        }
                    }
                }
            }
        }
    }
}

/// `y = Σ_j w_j v_j` over the rows v_j of `values` (each `16·C` wide), j in order.
#[inline(always)]
fn weighted_sum<const C: usize>(w: &[f32], values: &[f32], y: &mut [f32]) {
    let mut acc = [[0f32; 16]; C];
    for (&wj, vr) in w.iter().zip(values.chunks_exact(16 * C)) {
        for (c, a) in acc.iter_mut().enumerate() {
            let v: &[f32; 16] = vr[16 * c..16 * (c + 1)].try_into().expect("16 columns");
            for t in 0..16 {
                a[t] += wj * v[t];
            }
        }
    }
    for (yc, a) in y.chunks_exact_mut(16).zip(&acc) {
        yc.copy_from_slice(a);
    }
}

/// `t` (N, K, L, E) if each head's L×E block is contiguous, a contiguous copy otherwise.
fn heads_contiguous(t: &Tensor) -> Result<Tensor> {
    let st = t.stride();
    let e = t.dims()[3];
    if st[3] == 1 && st[2] == e {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

/// Run `f` on the whole f32 buffer behind a CPU tensor and its layout.
fn with_strided<R>(t: &Tensor, f: impl FnOnce(&[f32], &Layout) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(s.as_slice::<f32>()?, layout),
        _ => bail!("decode_attention: expects a CPU tensor"),
    }
}
