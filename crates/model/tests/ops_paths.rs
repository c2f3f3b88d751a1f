//! The two implementations of every op agree: `ops::fused` (aha's CPU kernels) against
//! `ops::generic` (candle compositions, what CUDA and `AHA_OPS=generic` run), forward and
//! gradients, in f32 on the CPU. Inputs are trainable so the generic side runs its differentiable
//! composition; a second pass with plain tensors checks the candle-nn kernels it uses when no
//! gradient is needed. Tolerance: f32 rounding of sums over at most a few hundred terms.

use aha_model::ops::{fused, generic};
use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 2e-5 + 1e-4 * w.abs(),
            "{what}[{i}]: fused {g}, generic {w}"
        );
    }
}

/// Runs `op` from both implementations on trainable copies of `inputs`, checks the outputs and
/// the gradients of `Σ y·r` for every input, then checks the untracked generic forward.
fn check(
    what: &str,
    inputs: &[Tensor],
    fused_op: impl Fn(&[Tensor]) -> Result<Tensor>,
    generic_op: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let run = |op: &dyn Fn(&[Tensor]) -> Result<Tensor>| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let xs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = op(&xs).unwrap();
        (y, vars)
    };
    let (yf, vf) = run(&fused_op);
    let (yg, vg) = run(&generic_op);
    assert_close(what, &values(&yf), &values(&yg));
    let r = random(&mut rng, yf.dims(), 1.0);
    let gf = (&yf * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gg = (&yg * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, (a, b)) in vf.iter().zip(&vg).enumerate() {
        match (gf.get(a), gg.get(b)) {
            (Some(a), Some(b)) => assert_close(&format!("{what} grad {i}"), &values(a), &values(b)),
            (None, None) => {}
            (a, b) => panic!(
                "{what} input {i}: fused has a gradient: {}, generic: {}",
                a.is_some(),
                b.is_some()
            ),
        }
    }
    let untracked = generic_op(inputs).unwrap();
    assert_close(
        &format!("{what} untracked"),
        &values(&yf),
        &values(&untracked),
    );
}

#[test]
fn softmax_paths_agree() {
    let mut r = ChaCha8Rng::seed_from_u64(1);
    let x = random(&mut r, &[3, 5, 40], 4.0);
    check(
        "softmax",
        &[x],
        |x| fused::softmax_last_dim(&x[0]),
        |x| generic::softmax_last_dim(&x[0]),
    );
}

#[test]
fn rms_norm_paths_agree() {
    let mut r = ChaCha8Rng::seed_from_u64(2);
    let x = random(&mut r, &[4, 6, 32], 2.0);
    let w = random(&mut r, &[32], 1.0);
    check(
        "rms_norm",
        &[x, w],
        |x| fused::rms_norm(&x[0], &x[1], 1e-6),
        |x| generic::rms_norm(&x[0], &x[1], 1e-6),
    );
}

#[test]
fn rope_paths_agree() {
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let x = random(&mut r, &[2, 7, 3, 16], 2.0);
    let angles = random(&mut r, &[2, 7, 8], 3.0);
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    // cos/sin are tables, not parameters: only x is an input of the comparison.
    check(
        "rope",
        &[x],
        |x| fused::rope(&x[0], &cos, &sin),
        |x| generic::rope(&x[0], &cos, &sin),
    );
}

#[test]
fn token_logprobs_and_entropy_paths_agree() {
    let mut r = ChaCha8Rng::seed_from_u64(4);
    let logits = random(&mut r, &[3, 5, 300], 6.0);
    let ids: Vec<u32> = (0..15).map(|_| r.gen_range(0..300)).collect();
    let targets = Tensor::from_vec(ids, (3, 5), &Device::Cpu).unwrap();
    check(
        "token_logprobs",
        std::slice::from_ref(&logits),
        |x| fused::token_logprobs(&x[0], &targets),
        |x| generic::token_logprobs(&x[0], &targets),
    );
    let (f, g) = (
        fused::entropy(&logits).unwrap(),
        generic::entropy(&logits).unwrap(),
    );
    assert_close("entropy", &values(&f), &values(&g));
}

#[test]
fn swiglu_paths_agree() {
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let gate = random(&mut r, &[9, 24], 4.0);
    let up = random(&mut r, &[9, 24], 2.0);
    check(
        "swiglu",
        &[gate, up],
        |x| fused::swiglu(&x[0], &x[1]),
        |x| generic::swiglu(&x[0], &x[1]),
    );
}

#[test]
fn attention_paths_agree() {
    let mut r = ChaCha8Rng::seed_from_u64(6);
    let (n, s, h, kh, e) = (2, 6, 4, 2, 8);
    let q = random(&mut r, &[n, s, h, e], 1.5);
    let k = random(&mut r, &[n, kh, s, e], 1.5);
    let v = random(&mut r, &[n, kh, s, e], 1.5);
    // Causal, with the first key of row 1 hidden as padding.
    let mut m = vec![0f32; n * s * s];
    for b in 0..n {
        for i in 0..s {
            for j in 0..s {
                if j > i || (b == 1 && j == 0 && i > 0) {
                    m[(b * s + i) * s + j] = -1e30;
                }
            }
        }
    }
    let mask = Tensor::from_vec(m, (n, 1, 1, s, s), &Device::Cpu).unwrap();
    check(
        "attention",
        &[q, k, v],
        |x| fused::attention(&x[0], &x[1], &x[2], &mask, 0.3),
        |x| generic::attention(&x[0], &x[1], &x[2], &mask, 0.3),
    );
}

/// A causal mask (N, 1, 1, S, S) whose row 1 (when there is one) has its first three keys
/// padded, so its first three queries see no key at all.
fn causal_with_padding(n: usize, s: usize) -> Tensor {
    let mut m = vec![0f32; n * s * s];
    for b in 0..n {
        for i in 0..s {
            for j in 0..s {
                if j > i || (b == 1 && j < 3) {
                    m[(b * s + i) * s + j] = -1e30;
                }
            }
        }
    }
    Tensor::from_vec(m, (n, 1, 1, s, s), &Device::Cpu).unwrap()
}

/// The packed rope+attention kernel over two query blocks, causal, with a left-padded row (whose
/// first query sees no key), and a second pass with one mask shared by the batch and no causal
/// structure (nothing to skip).
#[test]
fn rope_attention_paths_agree() {
    use aha_model::ops::Heads;
    let mut r = ChaCha8Rng::seed_from_u64(8);
    let (n, s, h, kh, e) = (2, 70, 4, 2, 8);
    let heads = Heads {
        q: h,
        kv: kh,
        dim: e,
    };
    let qkv = random(&mut r, &[n, s, (h + 2 * kh) * e], 1.5);
    let angles = random(&mut r, &[n, s, e / 2], 3.0);
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    let causal = causal_with_padding(n, s);
    let open = random(&mut r, &[1, 1, 1, s, s], 2.0);
    for (what, mask) in [("causal", &causal), ("shared", &open)] {
        check(
            &format!("rope_attention {what}"),
            std::slice::from_ref(&qkv),
            |x| fused::rope_attention(&x[0], &cos, &sin, mask, heads, 0.3),
            |x| generic::rope_attention(&x[0], &cos, &sin, mask, heads, 0.3),
        );
    }
}

/// A whole decoder layer as one node (hand-written backward) against the layer composed from the
/// generic ops, with q/k/v biases, GQA, two query blocks and a padded row; gradients for the
/// input and all twelve weights.
#[test]
fn decoder_layer_matches_the_composed_layer() {
    use aha_model::ops::{Heads, LayerWeights};
    let mut r = ChaCha8Rng::seed_from_u64(10);
    let (n, s, d, h, kh, e, f) = (2, 70, 16, 4, 2, 4, 24);
    let heads = Heads {
        q: h,
        kv: kh,
        dim: e,
    };
    let angles = random(&mut r, &[n, s, e / 2], 3.0);
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    let mask = causal_with_padding(n, s);
    let shapes: [&[usize]; 13] = [
        &[n, s, d],
        &[d],
        &[h * e, d],
        &[kh * e, d],
        &[kh * e, d],
        &[h * e],
        &[kh * e],
        &[kh * e],
        &[d, h * e],
        &[d],
        &[f, d],
        &[f, d],
        &[d, f],
    ];
    let inputs: Vec<Tensor> = shapes.iter().map(|sh| random(&mut r, sh, 0.6)).collect();
    let eps = 1e-6;
    check(
        "decoder_layer",
        &inputs,
        |x| {
            let w = LayerWeights {
                input_norm: &x[1],
                q: &x[2],
                k: &x[3],
                v: &x[4],
                qkv_bias: Some([&x[5], &x[6], &x[7]]),
                o: &x[8],
                o_bias: None,
                post_norm: &x[9],
                gate: &x[10],
                up: &x[11],
                down: &x[12],
            };
            fused::decoder_layer(&x[0], &w, &cos, &sin, &mask, heads, eps)
        },
        |x| {
            let flat = |t: &Tensor| t.reshape((n * s, ())).unwrap();
            let a = flat(&generic::rms_norm(&x[0], &x[1], eps)?);
            let wqkv = Tensor::cat(&[&x[2], &x[3], &x[4]], 0)?;
            let bqkv = Tensor::cat(&[&x[5], &x[6], &x[7]], 0)?;
            let qkv = generic::linear(&a, &wqkv, Some(&bqkv))?.reshape((n, s, ()))?;
            let o = generic::rope_attention(&qkv, &cos, &sin, &mask, heads, 1.0 / 2.0)?;
            let hid = (&x[0] + generic::linear(&flat(&o), &x[8], None)?.reshape((n, s, d))?)?;
            let c = flat(&generic::rms_norm(&hid, &x[9], eps)?);
            let gu = generic::linear(&c, &Tensor::cat(&[&x[10], &x[11]], 0)?, None)?;
            let u = generic::swiglu_packed(&gu)?;
            hid + generic::linear(&u, &x[12], None)?.reshape((n, s, d))?
        },
    );
}

/// The fused attention kernel hands its saved activations to the first backward (so a deep
/// model's peak is not activations plus gradients): a second backward through the same graph is a
/// clear error, not gradients from freed state.
#[test]
fn a_second_backward_through_a_fused_graph_is_an_error() {
    use aha_model::ops::Heads;
    let mut r = ChaCha8Rng::seed_from_u64(11);
    let (n, s, e) = (1, 5, 4);
    let heads = Heads {
        q: 2,
        kv: 1,
        dim: e,
    };
    let qkv = Var::from_tensor(&random(&mut r, &[n, s, 4 * e], 1.0)).unwrap();
    let angles = random(&mut r, &[n, s, e / 2], 3.0);
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    let mask = causal_with_padding(n, s);
    let y = fused::rope_attention(qkv.as_tensor(), &cos, &sin, &mask, heads, 0.5).unwrap();
    let loss = y.sum_all().unwrap();
    assert!(loss.backward().unwrap().get(qkv.as_tensor()).is_some());
    let err = loss.backward().unwrap_err().to_string();
    assert!(err.contains("second backward"), "{err}");
}

#[test]
fn swiglu_packed_paths_agree() {
    let mut r = ChaCha8Rng::seed_from_u64(9);
    let gu = random(&mut r, &[37, 2 * 45], 3.0);
    check(
        "swiglu_packed",
        &[gu],
        |x| fused::swiglu_packed(&x[0]),
        |x| generic::swiglu_packed(&x[0]),
    );
}

/// The decode kernel reads a narrowed KV cache in place: 1 and 3 new queries over 9 of 12 slots,
/// a mask with padding in one row and a mask shared by the batch; head dims with and without a
/// register-blocked value sum.
#[test]
fn decode_attention_matches_the_training_kernel() {
    for e in [8, 16, 32, 64, 128] {
        decode_attention_case(e);
    }
}

fn decode_attention_case(e: usize) {
    let mut r = ChaCha8Rng::seed_from_u64(7);
    let (n, h, kh, cap, l) = (3, 6, 2, 12, 9);
    let kc = random(&mut r, &[n, kh, cap, e], 1.5);
    let vc = random(&mut r, &[n, kh, cap, e], 1.5);
    let (k, v) = (kc.narrow(2, 0, l).unwrap(), vc.narrow(2, 0, l).unwrap());
    for s in [1, 3] {
        let q = random(&mut r, &[n, s, h, e], 1.5);
        let mut m = vec![0f32; n * s * l];
        for i in 0..s {
            for j in 0..l {
                if j > l - s + i || (j < 2 && i == 0) {
                    m[i * l + j] = -1e30;
                }
            }
        }
        let per_row = Tensor::from_vec(m.clone(), (n, 1, 1, s, l), &Device::Cpu).unwrap();
        let shared = Tensor::from_vec(m[..s * l].to_vec(), (1, 1, 1, s, l), &Device::Cpu).unwrap();
        for mask in [per_row, shared] {
            let got = fused::decode_attention(&q, &k, &v, &mask, 0.3).unwrap();
            let want = fused::attention(
                &q,
                &k.contiguous().unwrap(),
                &v.contiguous().unwrap(),
                &mask,
                0.3,
            )
            .unwrap();
            assert_close(
                &format!("decode attention e={e} s={s}"),
                &values(&got),
                &values(&want),
            );
        }
    }
}

#[test]
fn linear_paths_agree() {
    let mut r = ChaCha8Rng::seed_from_u64(7);
    let x = random(&mut r, &[11, 20], 1.0);
    let w = random(&mut r, &[13, 20], 1.0);
    let b = random(&mut r, &[13], 1.0);
    check(
        "linear+bias",
        &[x.clone(), w.clone(), b],
        |x| fused::linear(&x[0], &x[1], Some(&x[2])),
        |x| generic::linear(&x[0], &x[1], Some(&x[2])),
    );
    check(
        "linear",
        &[x, w],
        |x| fused::linear(&x[0], &x[1], None),
        |x| generic::linear(&x[0], &x[1], None),
    );
}

/// bf16 activations go through the generic path with reductions in f32: softmax rows still sum
/// to one closely, and RMSNorm output has unit RMS to bf16 precision.
#[test]
fn bf16_reductions_stay_accurate() {
    let mut r = ChaCha8Rng::seed_from_u64(8);
    let x = random(&mut r, &[4, 512], 8.0)
        .to_dtype(DType::BF16)
        .unwrap();
    let y = aha_model::ops::softmax_last_dim(&x).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    for s in values(&y.to_dtype(DType::F32).unwrap().sum(1).unwrap()) {
        assert!((s - 1.0).abs() < 1e-2, "row sum {s}");
    }
    let w = Tensor::ones(512, DType::F32, &Device::Cpu).unwrap();
    let y = aha_model::ops::rms_norm(&x, &w, 1e-6).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let y = y.to_dtype(DType::F32).unwrap();
    for ms in values(&y.sqr().unwrap().mean(1).unwrap()) {
        assert!((ms - 1.0).abs() < 2e-2, "mean square {ms}");
    }
}
