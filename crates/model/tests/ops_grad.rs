//! The ops in `aha_model::ops` (the fused CPU kernels, or the generic path under
//! `AHA_OPS=generic`) against the generic compositions (`aha_model::ops::generic`): forward values, gradients against central finite differences,
//! the parallel code paths on larger inputs, strided inputs and input errors.
//!
//! Finite differences are taken on the reference forward in f64 (step 1e-5: truncation error
//! ~1e-10, rounding ~1e-11), so they are the exact gradient to far below the tolerance; what the
//! tolerance covers is the custom op's f32 arithmetic: sums of at most ~12 O(1) terms with unit
//! roundoff 6e-8, so a few 1e-6 absolute. We allow 1e-5 + 1e-4·|g|.

use aha_model::ops::{self, generic as reference};
use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MASKED: f32 = -1e30;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn tensor(v: Vec<f32>, shape: &[usize]) -> Tensor {
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

fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// `d/dx Σ f(x)·r` by central differences of the f64 forward `f`, at x (f32 values).
fn fd_grad(
    f: impl Fn(&Tensor) -> Result<Tensor>,
    x: &[f32],
    shape: &[usize],
    r: &Tensor,
) -> Vec<f32> {
    let h = 1e-5;
    let base: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let loss = |v: &[f64]| -> f64 {
        let t = Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap();
        let y = f(&t).unwrap();
        (y * r.to_dtype(DType::F64).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    (0..base.len())
        .map(|i| {
            let mut p = base.clone();
            p[i] += h;
            let up = loss(&p);
            p[i] -= 2.0 * h;
            let down = loss(&p);
            ((up - down) / (2.0 * h)) as f32
        })
        .collect()
}

/// Gradient of `Σ op(x)·r` with respect to the var `x`, through candle's autodiff.
fn autodiff_grad(y: &Tensor, r: &Tensor, x: &Var) -> Vec<f32> {
    let grads = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
    values(
        grads
            .get(x)
            .expect("the op must pass a gradient to its input"),
    )
}

/// (N, T, L) scores with masked entries: a causal pattern, one row with a single visible entry,
/// and large-magnitude values (to check the max shift).
fn masked_scores(rng: &mut ChaCha8Rng, n: usize, t: usize, l: usize) -> Vec<f32> {
    let mut x = uniform(rng, n * t * l, 3.0);
    for a in 0..n {
        for i in 0..t {
            for j in 0..l {
                if j > i + l - t {
                    x[(a * t + i) * l + j] = MASKED;
                }
            }
        }
    }
    x[0] = 60.0;
    x
}

#[test]
fn softmax_forward_matches_reference_with_masks() {
    let mut r = rng(1);
    let x = tensor(masked_scores(&mut r, 2, 4, 6), &[2, 4, 6]);
    let got = values(&ops::softmax_last_dim(&x).unwrap());
    let want = values(&reference::softmax_last_dim(&x).unwrap());
    assert_close("softmax", &got, &want, 1e-6, 1e-5);
    // Masked entries are exactly zero and rows sum to one.
    for (g, x) in got.iter().zip(values(&x)) {
        if x == MASKED {
            assert_eq!(*g, 0.0);
        }
    }
    for row in got.chunks(6) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}

#[test]
fn softmax_of_a_fully_masked_row_is_uniform() {
    let x = tensor(vec![MASKED; 5], &[1, 5]);
    let got = values(&ops::softmax_last_dim(&x).unwrap());
    assert_close("uniform", &got, &[0.2; 5], 1e-7, 0.0);
}

#[test]
fn softmax_gradient_matches_finite_differences() {
    let mut r = rng(2);
    let shape = [2, 3, 5];
    let x0 = masked_scores(&mut r, 2, 3, 5);
    let rr = tensor(uniform(&mut r, 30, 1.0), &shape);
    let x = Var::from_tensor(&tensor(x0.clone(), &shape)).unwrap();
    let got = autodiff_grad(&ops::softmax_last_dim(x.as_tensor()).unwrap(), &rr, &x);
    let want = fd_grad(reference::softmax_last_dim, &x0, &shape, &rr);
    assert_close("softmax grad", &got, &want, 1e-5, 1e-4);
    for (g, x) in got.iter().zip(&x0) {
        if *x == MASKED {
            assert_eq!(*g, 0.0, "masked entries get no gradient");
        }
    }
}

#[test]
fn rms_norm_forward_and_gradients_match() {
    let mut r = rng(3);
    let shape = [2, 3, 8];
    let x0 = uniform(&mut r, 48, 2.0);
    let w0: Vec<f32> = uniform(&mut r, 8, 0.5).iter().map(|v| 1.0 + v).collect();
    let rr = tensor(uniform(&mut r, 48, 1.0), &shape);
    let eps = 1e-5;
    let x = Var::from_tensor(&tensor(x0.clone(), &shape)).unwrap();
    let w = Var::from_tensor(&tensor(w0.clone(), &[8])).unwrap();
    let y = ops::rms_norm(x.as_tensor(), w.as_tensor(), eps).unwrap();
    let want = reference::rms_norm(x.as_tensor(), w.as_tensor(), eps).unwrap();
    assert_close("rms_norm", &values(&y), &values(&want), 1e-6, 1e-5);

    let grads = (&y * &rr).unwrap().sum_all().unwrap().backward().unwrap();
    let w64 = tensor(w0.clone(), &[8]).to_dtype(DType::F64).unwrap();
    let x64 = tensor(x0.clone(), &shape).to_dtype(DType::F64).unwrap();
    let want_dx = fd_grad(|x| reference::rms_norm(x, &w64, eps), &x0, &shape, &rr);
    let want_dw = fd_grad(|w| reference::rms_norm(&x64, w, eps), &w0, &[8], &rr);
    assert_close(
        "rms_norm dx",
        &values(grads.get(&x).unwrap()),
        &want_dx,
        1e-5,
        1e-4,
    );
    assert_close(
        "rms_norm dw",
        &values(grads.get(&w).unwrap()),
        &want_dw,
        1e-5,
        1e-4,
    );
}

#[test]
fn rms_norm_rejects_a_misshapen_weight() {
    let x = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::ones(7, DType::F32, &Device::Cpu).unwrap();
    let err = ops::rms_norm(&x, &w, 1e-6).unwrap_err().to_string();
    assert!(err.contains("rms_norm") && err.contains("[8]"), "{err}");
}

fn rope_inputs(
    r: &mut ChaCha8Rng,
    n: usize,
    t: usize,
    h: usize,
    e: usize,
) -> (Vec<f32>, Tensor, Tensor) {
    let x = uniform(r, n * t * h * e, 1.0);
    let angles = uniform(r, n * t * e / 2, 6.0);
    let cos = tensor(angles.iter().map(|a| a.cos()).collect(), &[n, t, e / 2]);
    let sin = tensor(angles.iter().map(|a| a.sin()).collect(), &[n, t, e / 2]);
    (x, cos, sin)
}

#[test]
fn rope_forward_and_gradient_match() {
    let mut r = rng(4);
    let shape = [2, 3, 2, 6];
    let (x0, cos, sin) = rope_inputs(&mut r, 2, 3, 2, 6);
    let rr = tensor(uniform(&mut r, 72, 1.0), &shape);
    let x = Var::from_tensor(&tensor(x0.clone(), &shape)).unwrap();
    let y = ops::rope(x.as_tensor(), &cos, &sin).unwrap();
    let want = reference::rope(x.as_tensor(), &cos, &sin).unwrap();
    assert_close("rope", &values(&y), &values(&want), 1e-6, 1e-5);

    let got = autodiff_grad(&y, &rr, &x);
    let (c64, s64) = (
        cos.to_dtype(DType::F64).unwrap(),
        sin.to_dtype(DType::F64).unwrap(),
    );
    let want = fd_grad(|x| reference::rope(x, &c64, &s64), &x0, &shape, &rr);
    assert_close("rope grad", &got, &want, 1e-5, 1e-4);
}

#[test]
fn rope_rejects_mismatched_tables() {
    let x = Tensor::zeros((1, 3, 2, 6), DType::F32, &Device::Cpu).unwrap();
    let cs = Tensor::zeros((1, 3, 4), DType::F32, &Device::Cpu).unwrap();
    let err = ops::rope(&x, &cs, &cs).unwrap_err().to_string();
    assert!(err.contains("rope") && err.contains("(1, 3, 3)"), "{err}");
}

fn logit_inputs(r: &mut ChaCha8Rng, n: usize, t: usize, v: usize) -> (Vec<f32>, Tensor) {
    let x = uniform(r, n * t * v, 4.0);
    let targets: Vec<u32> = (0..n * t).map(|_| r.gen_range(0..v as u32)).collect();
    (x, Tensor::from_vec(targets, (n, t), &Device::Cpu).unwrap())
}

#[test]
fn token_logprobs_forward_and_gradient_match() {
    let mut r = rng(5);
    let shape = [2, 3, 11];
    let (x0, targets) = logit_inputs(&mut r, 2, 3, 11);
    let rr = tensor(uniform(&mut r, 6, 1.0), &[2, 3]);
    let x = Var::from_tensor(&tensor(x0.clone(), &shape)).unwrap();
    let y = ops::token_logprobs(x.as_tensor(), &targets).unwrap();
    let want = reference::token_logprobs(x.as_tensor(), &targets).unwrap();
    assert_eq!(y.dims(), &[2, 3]);
    assert_close("token_logprobs", &values(&y), &values(&want), 1e-5, 1e-5);

    let got = autodiff_grad(&y, &rr, &x);
    let want = fd_grad(|x| reference::token_logprobs(x, &targets), &x0, &shape, &rr);
    assert_close("token_logprobs grad", &got, &want, 1e-5, 1e-4);
}

#[test]
fn token_logprobs_rejects_bad_targets() {
    let x = Tensor::zeros((1, 2, 5), DType::F32, &Device::Cpu).unwrap();
    let t = Tensor::new(&[[1u32, 5]], &Device::Cpu).unwrap();
    let err = ops::token_logprobs(&x, &t).unwrap_err().to_string();
    assert!(err.contains("target id 5") && err.contains("5"), "{err}");
    let t = Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap();
    let err = ops::token_logprobs(&x, &t).unwrap_err().to_string();
    assert!(err.contains("u32"), "{err}");
}

#[test]
fn entropy_matches_reference() {
    let mut r = rng(6);
    let (x0, _) = logit_inputs(&mut r, 2, 3, 17);
    let x = tensor(x0, &[2, 3, 17]);
    let got = values(&ops::entropy(&x).unwrap());
    let want = values(&reference::entropy(&x).unwrap());
    assert_close("entropy", &got, &want, 1e-5, 1e-5);
    // A uniform row has entropy ln V.
    let u = Tensor::zeros((1, 17), DType::F32, &Device::Cpu).unwrap();
    assert_close(
        "uniform entropy",
        &values(&ops::entropy(&u).unwrap()),
        &[(17f32).ln()],
        1e-6,
        0.0,
    );
}

/// Inputs big enough for the rayon paths (> 32K elements), checked forward and backward against
/// the reference composition's own candle autodiff in f32.
#[test]
fn large_inputs_take_the_parallel_path_and_agree() {
    let mut r = rng(7);
    let check = |what: &str, fast: &Tensor, slow: &Tensor, x: &Var, rr: &Tensor| {
        assert_close(what, &values(fast), &values(slow), 1e-5, 1e-5);
        let gf = autodiff_grad(fast, rr, x);
        let gs = autodiff_grad(slow, rr, x);
        assert_close(&format!("{what} grad"), &gf, &gs, 1e-5, 1e-4);
    };

    let x = Var::from_tensor(&tensor(masked_scores(&mut r, 16, 64, 64), &[16, 64, 64])).unwrap();
    let rr = tensor(uniform(&mut r, 16 * 64 * 64, 1.0), &[16, 64, 64]);
    let (f, s) = (
        ops::softmax_last_dim(x.as_tensor()).unwrap(),
        reference::softmax_last_dim(x.as_tensor()).unwrap(),
    );
    check("softmax", &f, &s, &x, &rr);

    let x = Var::from_tensor(&tensor(uniform(&mut r, 256 * 192, 2.0), &[256, 192])).unwrap();
    let w = tensor(uniform(&mut r, 192, 1.0), &[192]);
    let rr = tensor(uniform(&mut r, 256 * 192, 1.0), &[256, 192]);
    let (f, s) = (
        ops::rms_norm(x.as_tensor(), &w, 1e-6).unwrap(),
        reference::rms_norm(x.as_tensor(), &w, 1e-6).unwrap(),
    );
    check("rms_norm", &f, &s, &x, &rr);

    let (x0, cos, sin) = rope_inputs(&mut r, 4, 64, 4, 32);
    let x = Var::from_tensor(&tensor(x0, &[4, 64, 4, 32])).unwrap();
    let rr = tensor(uniform(&mut r, 4 * 64 * 4 * 32, 1.0), &[4, 64, 4, 32]);
    let (f, s) = (
        ops::rope(x.as_tensor(), &cos, &sin).unwrap(),
        reference::rope(x.as_tensor(), &cos, &sin).unwrap(),
    );
    check("rope", &f, &s, &x, &rr);

    let (x0, targets) = logit_inputs(&mut r, 4, 32, 1000);
    let x = Var::from_tensor(&tensor(x0, &[4, 32, 1000])).unwrap();
    let rr = tensor(uniform(&mut r, 128, 1.0), &[4, 32]);
    let (f, s) = (
        ops::token_logprobs(x.as_tensor(), &targets).unwrap(),
        reference::token_logprobs(x.as_tensor(), &targets).unwrap(),
    );
    check("token_logprobs", &f, &s, &x, &rr);
    let (fe, se) = (ops::entropy(&f).unwrap(), reference::entropy(&f).unwrap());
    assert_close("entropy", &values(&fe), &values(&se), 1e-5, 1e-5);
}

/// The rms_norm weight gradient is a sum over rows; it must not depend on thread timing.
#[test]
fn rms_norm_weight_gradient_is_deterministic() {
    let mut r = rng(8);
    let x = Var::from_tensor(&tensor(uniform(&mut r, 512 * 256, 2.0), &[512, 256])).unwrap();
    let w = Var::from_tensor(&tensor(uniform(&mut r, 256, 1.0), &[256])).unwrap();
    let grad = || {
        let y = ops::rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap();
        values(y.sum_all().unwrap().backward().unwrap().get(&w).unwrap())
    };
    let first = grad();
    for _ in 0..5 {
        assert_eq!(grad(), first);
    }
}

#[test]
fn strided_inputs_are_handled() {
    let mut r = rng(9);
    let x = tensor(uniform(&mut r, 6 * 10, 2.0), &[6, 10]).t().unwrap(); // (10, 6) strided
    assert!(!x.is_contiguous());
    let got = values(&ops::softmax_last_dim(&x).unwrap());
    let want = values(&reference::softmax_last_dim(&x).unwrap());
    assert_close("strided softmax", &got, &want, 1e-6, 1e-5);
    let w = tensor(uniform(&mut r, 6, 1.0), &[6]);
    let got = values(&ops::rms_norm(&x, &w, 1e-6).unwrap());
    let want = values(&reference::rms_norm(&x, &w, 1e-6).unwrap());
    assert_close("strided rms_norm", &got, &want, 1e-6, 1e-5);
}

#[test]
fn non_f32_inputs_get_a_clear_error_from_the_fused_kernels() {
    let x = Tensor::zeros((2, 4), DType::F64, &Device::Cpu).unwrap();
    let err = ops::fused::softmax_last_dim(&x).unwrap_err().to_string();
    assert!(err.contains("softmax") && err.contains("f32"), "{err}");
}

#[test]
fn swiglu_forward_and_gradients_match() {
    let mut r = rng(10);
    let shape = [3, 7];
    let (a0, b0) = (uniform(&mut r, 21, 4.0), uniform(&mut r, 21, 2.0));
    let rr = tensor(uniform(&mut r, 21, 1.0), &shape);
    let a = Var::from_tensor(&tensor(a0.clone(), &shape)).unwrap();
    let b = Var::from_tensor(&tensor(b0.clone(), &shape)).unwrap();
    let y = ops::swiglu(a.as_tensor(), b.as_tensor()).unwrap();
    let want = reference::swiglu(a.as_tensor(), b.as_tensor()).unwrap();
    assert_close("swiglu", &values(&y), &values(&want), 1e-6, 1e-5);

    let grads = (&y * &rr).unwrap().sum_all().unwrap().backward().unwrap();
    let a64 = tensor(a0.clone(), &shape).to_dtype(DType::F64).unwrap();
    let b64 = tensor(b0.clone(), &shape).to_dtype(DType::F64).unwrap();
    let want_da = fd_grad(|a| reference::swiglu(a, &b64), &a0, &shape, &rr);
    let want_db = fd_grad(|b| reference::swiglu(&a64, b), &b0, &shape, &rr);
    assert_close(
        "swiglu d_gate",
        &values(grads.get(&a).unwrap()),
        &want_da,
        1e-5,
        1e-4,
    );
    assert_close(
        "swiglu d_up",
        &values(grads.get(&b).unwrap()),
        &want_db,
        1e-5,
        1e-4,
    );
}

/// (N, 1, 1, S, L) mask: causal over the last S of L slots, plus left padding of `pad[n]` slots.
fn attention_mask(n: usize, s: usize, l: usize, pad: &[usize]) -> Tensor {
    let mut m = vec![0f32; n * s * l];
    for b in 0..n {
        for i in 0..s {
            for j in 0..l {
                if j > i + l - s || j < pad[b] {
                    m[(b * s + i) * l + j] = MASKED;
                }
            }
        }
    }
    tensor(m, &[n, 1, 1, s, l])
}

#[test]
fn attention_forward_and_gradients_match() {
    let mut r = rng(11);
    // N 2, S 3 new tokens over L 4 slots, H 4 query heads sharing K 2 key heads, E 4.
    let (n, s, l, h, kh, e) = (2, 3, 4, 4, 2, 4);
    let (qs, ks) = ([n, s, h, e], [n, kh, l, e]);
    let q0 = uniform(&mut r, n * s * h * e, 1.5);
    let k0 = uniform(&mut r, n * kh * l * e, 1.5);
    let v0 = uniform(&mut r, n * kh * l * e, 1.5);
    let mask = attention_mask(n, s, l, &[0, 1]);
    let rr = tensor(uniform(&mut r, n * s * h * e, 1.0), &qs);
    let scale = 0.5;
    let q = Var::from_tensor(&tensor(q0.clone(), &qs)).unwrap();
    let k = Var::from_tensor(&tensor(k0.clone(), &ks)).unwrap();
    let v = Var::from_tensor(&tensor(v0.clone(), &ks)).unwrap();
    let y = ops::attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, scale).unwrap();
    let want =
        reference::attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, scale).unwrap();
    assert_eq!(y.dims(), &qs);
    assert_close("attention", &values(&y), &values(&want), 1e-6, 1e-5);

    let grads = (&y * &rr).unwrap().sum_all().unwrap().backward().unwrap();
    let f64t = |v: &[f32], shape: &[usize]| tensor(v.to_vec(), shape).to_dtype(DType::F64).unwrap();
    let (q64, k64, v64) = (f64t(&q0, &qs), f64t(&k0, &ks), f64t(&v0, &ks));
    let m64 = mask.to_dtype(DType::F64).unwrap();
    let att = |q: &Tensor, k: &Tensor, v: &Tensor| reference::attention(q, k, v, &m64, scale);
    let want_dq = fd_grad(|q| att(q, &k64, &v64), &q0, &qs, &rr);
    let want_dk = fd_grad(|k| att(&q64, k, &v64), &k0, &ks, &rr);
    let want_dv = fd_grad(|v| att(&q64, &k64, v), &v0, &ks, &rr);
    assert_close(
        "attention dq",
        &values(grads.get(&q).unwrap()),
        &want_dq,
        1e-5,
        1e-4,
    );
    assert_close(
        "attention dk",
        &values(grads.get(&k).unwrap()),
        &want_dk,
        1e-5,
        1e-4,
    );
    assert_close(
        "attention dv",
        &values(grads.get(&v).unwrap()),
        &want_dv,
        1e-5,
        1e-4,
    );
}

/// Larger attention (parallel kernels), a mask shared by all rows, and strided k/v as a KV cache
/// hands them over (a narrow of a longer buffer).
#[test]
fn attention_with_shared_mask_and_strided_kv_matches() {
    let mut r = rng(12);
    let (n, s, h, kh, e, cap) = (3, 40, 8, 2, 16, 48);
    let q = tensor(uniform(&mut r, n * s * h * e, 1.5), &[n, s, h, e]);
    let kbuf = tensor(uniform(&mut r, n * kh * cap * e, 1.5), &[n, kh, cap, e]);
    let vbuf = tensor(uniform(&mut r, n * kh * cap * e, 1.5), &[n, kh, cap, e]);
    let (k, v) = (kbuf.narrow(2, 0, s).unwrap(), vbuf.narrow(2, 0, s).unwrap());
    assert!(!k.is_contiguous());
    let mask = attention_mask(1, s, s, &[0]);
    let got = ops::attention(&q, &k, &v, &mask, 0.25).unwrap();
    let want = reference::attention(&q, &k, &v, &mask, 0.25).unwrap();
    assert_close("attention", &values(&got), &values(&want), 1e-5, 1e-5);
}

#[test]
fn attention_rejects_a_misshapen_mask() {
    let q = Tensor::zeros((1, 2, 2, 4), DType::F32, &Device::Cpu).unwrap();
    let k = Tensor::zeros((1, 1, 3, 4), DType::F32, &Device::Cpu).unwrap();
    let m = Tensor::zeros((1, 1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let err = ops::attention(&q, &k, &k, &m, 1.0).unwrap_err().to_string();
    assert!(err.contains("mask") && err.contains("3)"), "{err}");
}

#[test]
fn linear_forward_and_gradients_match() {
    let mut r = rng(13);
    let (m, k, n) = (5, 6, 4);
    let (x0, w0, b0) = (
        uniform(&mut r, m * k, 1.0),
        uniform(&mut r, n * k, 1.0),
        uniform(&mut r, n, 1.0),
    );
    let rr = tensor(uniform(&mut r, m * n, 1.0), &[m, n]);
    let x = Var::from_tensor(&tensor(x0.clone(), &[m, k])).unwrap();
    let w = Var::from_tensor(&tensor(w0.clone(), &[n, k])).unwrap();
    let b = Var::from_tensor(&tensor(b0.clone(), &[n])).unwrap();
    for with_bias in [true, false] {
        let bias = with_bias.then(|| b.as_tensor());
        let y = ops::linear(x.as_tensor(), w.as_tensor(), bias).unwrap();
        let want = reference::linear(x.as_tensor(), w.as_tensor(), bias).unwrap();
        assert_close("linear", &values(&y), &values(&want), 1e-6, 1e-5);

        let grads = (&y * &rr).unwrap().sum_all().unwrap().backward().unwrap();
        let f64t = |v: &[f32], s: &[usize]| tensor(v.to_vec(), s).to_dtype(DType::F64).unwrap();
        let (x64, w64, b64) = (f64t(&x0, &[m, k]), f64t(&w0, &[n, k]), f64t(&b0, &[n]));
        let b64 = with_bias.then_some(&b64);
        let want_dx = fd_grad(|x| reference::linear(x, &w64, b64), &x0, &[m, k], &rr);
        let want_dw = fd_grad(|w| reference::linear(&x64, w, b64), &w0, &[n, k], &rr);
        assert_close(
            "linear dx",
            &values(grads.get(&x).unwrap()),
            &want_dx,
            1e-5,
            1e-4,
        );
        assert_close(
            "linear dw",
            &values(grads.get(&w).unwrap()),
            &want_dw,
            1e-5,
            1e-4,
        );
        if with_bias {
            let want_db = fd_grad(|b| reference::linear(&x64, &w64, Some(b)), &b0, &[n], &rr);
            assert_close(
                "linear db",
                &values(grads.get(&b).unwrap()),
                &want_db,
                1e-5,
                1e-4,
            );
        } else {
            assert!(grads.get(&b).is_none());
        }
    }
}

/// A shape big enough for the threaded GEMM path.
#[test]
fn large_linear_matches_reference() {
    let mut r = rng(14);
    let (m, k, n) = (300, 128, 96);
    let x = Var::from_tensor(&tensor(uniform(&mut r, m * k, 1.0), &[m, k])).unwrap();
    let w = Var::from_tensor(&tensor(uniform(&mut r, n * k, 1.0), &[n, k])).unwrap();
    let b = tensor(uniform(&mut r, n, 1.0), &[n]);
    let rr = tensor(uniform(&mut r, m * n, 1.0), &[m, n]);
    let fast = ops::linear(x.as_tensor(), w.as_tensor(), Some(&b)).unwrap();
    let slow = reference::linear(x.as_tensor(), w.as_tensor(), Some(&b)).unwrap();
    assert_close("linear", &values(&fast), &values(&slow), 1e-4, 1e-5);
    for v in [&x, &w] {
        let gf = autodiff_grad(&fast, &rr, v);
        let gs = autodiff_grad(&slow, &rr, v);
        assert_close("linear grad", &gf, &gs, 1e-4, 1e-4);
    }
}
