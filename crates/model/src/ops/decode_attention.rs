//! Attention for a few new tokens over the KV cache, without a graph: one pass per query head
//! that reads its keys and values straight out of the cache buffers.
//!
//! The training kernel ([`super::attention`]) makes the queries contiguous per head, runs two
//! batched matmuls (N·K small GEMMs each), a softmax and a layout copy: about ten allocations and
//! dispatches per layer and decode step, which cost more than the arithmetic when S is 1. Here
//! each output row (n, s, h) is computed on its own — scores `q·k` over the L cached slots, the
//! scaled and masked softmax, the weighted sum of values — so the result does not depend on how
//! rows are split across threads. Only for tensors that carry no gradient (rollouts).

use candle_core::{bail, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

use super::cpu;

/// Above this many new tokens per row the batched-matmul path wins.
pub const MAX_QUERIES: usize = 4;

/// Multiply-adds per rayon task (rounded to whole output rows).
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
    let mut out = vec![0f32; n * s * h * e];
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
                    let row = |r: usize, y: &mut [f32], p: &mut Vec<f32>| {
                        let (b, t, head) = (r / (s * h), (r / h) % s, r % h);
                        let kv = head / (h / kh);
                        let mrow = (b * s + t) % mask_rows;
                        let qr = &qs[r * e..(r + 1) * e];
                        let mr = &ms[mrow * l..(mrow + 1) * l];
                        attend_one(qr, &cache, b, kv, mr, scale as f32, e, p, y);
                    };
                    let per_task = (TASK_WORK / (l * e).max(1)).max(1);
                    out.par_chunks_mut(per_task * e)
                        .enumerate()
                        .for_each(|(c, chunk)| {
                            let mut p = Vec::with_capacity(l);
                            for (i, y) in chunk.chunks_mut(e).enumerate() {
                                row(c * per_task + i, y, &mut p);
                            }
                        });
                    Ok(())
                })
            })
        })
    })?;
    Tensor::from_vec(out, (n, s, h, e), q.device())
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

/// One output row: `y = softmax(scale · K q + mask) V` for query `q` against kv head `kv` of
/// batch row `b`. `p` is scratch for the L scores.
#[allow(clippy::too_many_arguments)]
fn attend_one(
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
    let k0 = c.k_start + b * c.k_stride[0] + kv * c.k_stride[1];
    let v0 = c.v_start + b * c.v_stride[0] + kv * c.v_stride[1];
    p.clear();
    p.extend((0..l).map(|j| {
        let kr = &c.k[k0 + j * e..k0 + (j + 1) * e];
        scale * cpu::dot(q, kr) + mask[j]
    }));
    let max = cpu::max(p);
    p.iter_mut().for_each(|x| *x = cpu::exp(*x - max));
    let inv = 1.0 / cpu::sum(p);
    y.iter_mut().for_each(|y| *y = 0.0);
    for (j, &pj) in p.iter().enumerate() {
        let w = pj * inv;
        let vr = &c.v[v0 + j * e..v0 + (j + 1) * e];
        for (y, v) in y.iter_mut().zip(vr) {
            *y += w * v;
        }
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
