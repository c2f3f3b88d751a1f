//! The output layer and the token logprobs as one op: `log_softmax(h Wᵀ / T)[target]` for every
//! row, without ever holding the (rows, V) logits.
//!
//! Composed, a training step keeps the logits, their gradient and candle's zero-filled gradient
//! buffers alive at once: with Qwen2.5's 151,936-token vocabulary that is 0.6 GB per thousand
//! tokens, each. Here rows go through in chunks of about [`CHUNK_ELEMS`] logits: the backward
//! computes a chunk's logits again (one more output-layer GEMM) and turns them straight into the
//! chunk's share of `dh` and `dW`; when all rows fit in one chunk the forward keeps its logits for
//! the backward instead. The numbers are
//! those of [`super::linear`], [`super::token_logprobs`] and [`super::entropy`] in sequence: the
//! same row functions, the temperature applied as candle's scalar division applies it.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::dense::{matmul, View};
use super::logprobs::{entropy_given, logprob_grad_in_place, max_lse};
use super::{cpu, grad_sink};

/// Logits held at once (32 MB of f32): at least one row per chunk.
const CHUNK_ELEMS: usize = 1 << 23;

/// Logits per rayon task of the forward's row statistics (whole rows).
const ROW_TASK_ELEMS: usize = 16 * 1024;

/// `(logp, entropy)` for h (M, D), the output weight w (V, D) and targets (M): logp (M) with a
/// gradient to h and w, and (if asked) the entropy (M) of each row's distribution, no gradient.
/// f32 on the CPU; the caller checks shapes and ids.
pub fn head_logprobs(
    h: &Tensor,
    w: &Tensor,
    targets: Vec<u32>,
    temperature: f64,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    chunked(h, w, targets, temperature, with_entropy, CHUNK_ELEMS)
}

/// [`head_logprobs`] with chunks of about `chunk_elems` logits.
fn chunked(
    h: &Tensor,
    w: &Tensor,
    targets: Vec<u32>,
    temperature: f64,
    with_entropy: bool,
    chunk_elems: usize,
) -> Result<(Tensor, Option<Tensor>)> {
    let m = h.dims2()?.0;
    let op = HeadLogprobs {
        chunk_elems,
        targets,
        inv_t: (1.0 / temperature) as f32,
        scaled: temperature != 1.0,
        with_entropy,
        kept: cpu::Stash::new(),
    };
    // (M, 2): the logprob, then the entropy (or 0) — one output, so one graph node.
    let out = h.contiguous()?.apply_op2(&w.contiguous()?, op)?;
    let logp = out.narrow(1, 0, 1)?.reshape(m)?;
    let entropy = match with_entropy {
        true => Some(out.detach().narrow(1, 1, 1)?.reshape(m)?),
        false => None,
    };
    Ok((logp, entropy))
}

struct HeadLogprobs {
    chunk_elems: usize,
    targets: Vec<u32>,
    inv_t: f32,
    /// Whether to multiply by `inv_t` at all (T = 1 leaves the logits untouched).
    scaled: bool,
    with_entropy: bool,
    /// The tempered logits of all rows when they fit in one chunk, from the forward for the
    /// backward.
    kept: cpu::Stash<Vec<f32>>,
}

impl HeadLogprobs {
    /// Rows per chunk for a vocabulary of `v`.
    fn chunk_rows(&self, v: usize) -> usize {
        (self.chunk_elems / v.max(1)).max(1)
    }

    /// The tempered logits (rows, V) of rows `r0..r0 + rows` of h (_, D).
    fn logits(&self, h: &[f32], w: &[f32], (r0, rows): (usize, usize), d: usize) -> Vec<f32> {
        let v = w.len() / d.max(1);
        let threads = rayon::current_num_threads();
        let hc = View::rows(&h[r0 * d..(r0 + rows) * d], d);
        let mut z = matmul(hc, View::transposed(w, d), (rows, d, v), None, threads);
        if self.scaled {
            let inv_t = self.inv_t;
            cpu::for_each_row(&mut z, v, |_, row| row.iter_mut().for_each(|x| *x *= inv_t));
        }
        z
    }
}

impl CustomOp2 for HeadLogprobs {
    fn name(&self) -> &'static str {
        "aha-head-logprobs"
    }

    fn cpu_fwd(
        &self,
        hs: &CpuStorage,
        hl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = cpu::f32_slice(hs, hl, self.name())?;
        let w = cpu::f32_slice(ws, wl, self.name())?;
        let (m, d) = hl.shape().dims2()?;
        let v = wl.shape().dims2()?.0;
        let mut out = vec![0f32; 2 * m];
        let chunk = self.chunk_rows(v);
        for r0 in (0..m).step_by(chunk) {
            let rows = chunk.min(m - r0);
            let z = self.logits(h, w, (r0, rows), d);
            let row = |i: usize| &z[i * v..(i + 1) * v];
            // One normaliser per row serves the logprob and the entropy.
            let stats: Vec<(f32, f32)> = (0..rows)
                .into_par_iter()
                .with_min_len((ROW_TASK_ELEMS / v.max(1)).max(1))
                .map(|i| {
                    let ml = max_lse(row(i));
                    let lp = row(i)[self.targets[r0 + i] as usize] - ml.1;
                    let entropy = match self.with_entropy {
                        true => entropy_given(row(i), ml),
                        false => 0.0,
                    };
                    (lp, entropy)
                })
                .collect();
            for (i, (lp, e)) in stats.into_iter().enumerate() {
                out[2 * (r0 + i)] = lp;
                out[2 * (r0 + i) + 1] = e;
            }
            if rows == m {
                self.kept.put(z, self.name())?;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((m, 2))))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (m, d) = h.dims2()?;
        let v = w.dims2()?.0;
        let name = self.name();
        let threads = rayon::current_num_threads();
        let (dh, dw) = cpu::with_f32(h, name, |hs| {
            cpu::with_f32(w, name, |ws| {
                cpu::with_f32(grad, name, |g| {
                    let mut dh = Vec::with_capacity(m * d);
                    let mut dw: Option<Vec<f32>> = None;
                    let chunk = self.chunk_rows(v);
                    for r0 in (0..m).step_by(chunk) {
                        let rows = chunk.min(m - r0);
                        // dz = g · (onehot(target) − softmax(z)), then through z = logits / T.
                        let kept = match rows == m {
                            true => self.kept.take_if_kept(),
                            false => None,
                        };
                        let mut dz = match kept {
                            Some(z) if z.len() == rows * v => z,
                            _ => self.logits(hs, ws, (r0, rows), d),
                        };
                        cpu::for_each_row(&mut dz, v, |i, row| {
                            let r = r0 + i;
                            logprob_grad_in_place(row, self.targets[r] as usize, g[2 * r]);
                            if self.scaled {
                                row.iter_mut().for_each(|x| *x *= self.inv_t);
                            }
                        });
                        let dzv = View::rows(&dz, v);
                        dh.extend(matmul(dzv, View::rows(ws, d), (rows, v, d), None, threads));
                        let hc = View::rows(&hs[r0 * d..(r0 + rows) * d], d);
                        let dzt = View::transposed(&dz, v);
                        dw = Some(matmul(dzt, hc, (v, rows, d), dw.take(), threads));
                    }
                    Ok((dh, dw.unwrap_or_else(|| vec![0f32; v * d])))
                })
            })
        })?;
        Ok((
            Some(cpu::tensor_from(dh, (m, d), h)?),
            grad_sink::deliver(w, cpu::tensor_from(dw, (v, d), w)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use super::chunked;
    use crate::ops::generic;

    fn filled(n: usize, k: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * k + 3) % 29) as f32 - 14.0) * scale)
            .collect()
    }

    /// Chunks of 8 rows (the last one short), and one chunk whose logits the forward keeps,
    /// against the logits composed from the generic ops: logprobs, entropies and both gradients,
    /// at a temperature and at 1.
    #[test]
    fn chunks_match_the_composed_logits() {
        let (m, d, v) = (37, 16, 50);
        let dev = Device::Cpu;
        let targets: Vec<u32> = (0..m).map(|i| ((i * 17) % v) as u32).collect();
        let coeff = Tensor::from_vec(filled(m, 5, 0.1), m, &dev).unwrap();
        for (temperature, chunk) in [(0.7, 8 * v), (1.0, 8 * v), (0.7, m * v), (1.0, m * v)] {
            let h = Var::from_vec(filled(m * d, 7, 0.05), (m, d), &dev).unwrap();
            let w = Var::from_vec(filled(v * d, 11, 0.04), (v, d), &dev).unwrap();
            let (lp, ent) = chunked(&h, &w, targets.clone(), temperature, true, chunk).unwrap();
            let grads = (lp.clone() * &coeff)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (dh, dw) = (grads.get(&h).unwrap(), grads.get(&w).unwrap());

            let h2 = Var::from_tensor(h.as_tensor()).unwrap();
            let w2 = Var::from_tensor(w.as_tensor()).unwrap();
            let logits = (h2.matmul(&w2.t().unwrap()).unwrap() / temperature).unwrap();
            let logits = logits.unsqueeze(0).unwrap();
            let ids = Tensor::new(targets.as_slice(), &dev)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let lp2 = generic::token_logprobs(&logits, &ids)
                .unwrap()
                .squeeze(0)
                .unwrap();
            let ent2 = generic::entropy(&logits).unwrap().squeeze(0).unwrap();
            let grads2 = (lp2.clone() * &coeff)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (dh2, dw2) = (grads2.get(&h2).unwrap(), grads2.get(&w2).unwrap());

            let diff = |a: &Tensor, b: &Tensor| {
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            assert!(diff(&lp, &lp2) < 1e-5, "logp, T {temperature}");
            assert!(
                diff(&ent.unwrap(), &ent2) < 1e-5,
                "entropy, T {temperature}"
            );
            assert!(diff(dh, dh2) < 1e-5, "dh, T {temperature}");
            assert!(diff(dw, dw2) < 1e-5, "dw, T {temperature}");
        }
    }
}
