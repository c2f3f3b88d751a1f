//! The row kernel and the blocked GEMM against a scalar f64 reference, each instruction set
//! against the others, and bf16 weights against their f32 widening, bit for bit.

use super::*;

/// Deterministic values in [-1, 1), bf16-representable when `bf16` (so widening is the identity
/// test of "the same weights in two dtypes").
fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
        })
        .collect()
}

fn to_bf16(v: &[f32]) -> Vec<u16> {
    v.iter()
        .map(|x| half::bf16::from_f32(*x).to_bits())
        .collect()
}

fn widened(v: &[u16]) -> Vec<f32> {
    v.iter().map(|b| widen(*b)).collect()
}

/// x · wᵀ in f64, one dot at a time.
fn reference(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = (0..k)
                .map(|q| x[i * k + q] as f64 * w[j * k + q] as f64)
                .sum();
        }
    }
    y
}

fn run(isa: Isa, x: &[f32], w: WeightRows, m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; m * n];
    multiply(isa, x, w, &mut y, m, n, k);
    y
}

const ISAS: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

/// Odd shapes: every row count up to the row kernel's limit and a few GEMM ones, K not a
/// multiple of 8 or 16, N not a multiple of the tile's 3.
fn shapes() -> Vec<(usize, usize, usize)> {
    let mut s: Vec<_> = (1..=MAX_ROWS).map(|m| (m, 7 + m % 5, 37 + m)).collect();
    s.extend([
        (1, 1, 1),
        (16, 130, 896),
        (5, 64, 15),
        (49, 35, 33),
        (64, 100, 24),
        (97, 50, 1),
        (MAX_ROWS + 3, 20, 40),
    ]);
    // Several GEMM blocks of weight rows (112 rows each at this K), the last one short.
    s.push((50, 300, 4100));
    s
}

#[test]
fn every_isa_matches_the_f64_reference() {
    for isa in ISAS.into_iter().filter(|i| i.available()) {
        for (m, n, k) in shapes() {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let want = reference(&x, &w, m, n, k);
            let got = run(isa, &x, WeightRows::F32(&w), m, n, k);
            for (g, r) in got.iter().zip(&want) {
                let tol = 1e-5 * (k as f64).sqrt() * (1.0 + r.abs());
                assert!(
                    (*g as f64 - r).abs() <= tol,
                    "{isa:?} ({m}, {n}, {k}): {g} vs {r}"
                );
            }
        }
    }
}

#[test]
fn bf16_weights_equal_their_f32_widening_bit_for_bit() {
    let mut isas = 0;
    for isa in ISAS.into_iter().filter(|i| i.available()) {
        isas += 1;
        for (m, n, k) in shapes() {
            let x = data(m * k, 3);
            let wb = to_bf16(&data(n * k, 4));
            let wf = widened(&wb);
            let from_bf16 = run(isa, &x, WeightRows::Bf16(&wb), m, n, k);
            let from_f32 = run(isa, &x, WeightRows::F32(&wf), m, n, k);
            let same = from_bf16
                .iter()
                .zip(&from_f32)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{isa:?} ({m}, {n}, {k}): bf16 and widened f32 differ");
        }
    }
    assert!(isas >= 1);
}

#[test]
fn instruction_sets_agree() {
    let isas: Vec<Isa> = ISAS.into_iter().filter(|i| i.available()).collect();
    if isas.len() < 2 {
        eprintln!("only {isas:?} on this CPU: nothing to compare");
        return;
    }
    for (m, n, k) in shapes() {
        let x = data(m * k, 5);
        let wb = to_bf16(&data(n * k, 6));
        let ys: Vec<Vec<f32>> = isas
            .iter()
            .map(|isa| run(*isa, &x, WeightRows::Bf16(&wb), m, n, k))
            .collect();
        for (isa, y) in isas.iter().zip(&ys).skip(1) {
            for (a, b) in y.iter().zip(&ys[0]) {
                let tol = 1e-5 * (k as f32).sqrt() * (1.0 + b.abs());
                assert!(
                    (a - b).abs() <= tol,
                    "{isa:?} vs {:?} ({m}, {n}, {k}): {a} vs {b}",
                    isas[0]
                );
            }
        }
    }
}

#[test]
fn linear_takes_bf16_tensors_and_matches_candle_matmul() {
    for (m, n, k) in [(3, 40, 19), (16, 64, 896), (60, 33, 70)] {
        let x = Tensor::from_vec(data(m * k, 7), (m, k), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(data(n * k, 8), (n, k), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let b = Tensor::from_vec(data(n, 9), n, &Device::Cpu).unwrap();
        let wf = w.to_dtype(DType::F32).unwrap();
        let want = x
            .matmul(&wf.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let got = linear(&x, &w, Some(&b)).unwrap();
        let diff = (got.clone() - want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4 * (k as f32).sqrt(), "({m}, {n}, {k}): {diff}");
        let exact = linear(&x, &wf, Some(&b)).unwrap();
        assert_eq!(
            got.to_vec2::<f32>().unwrap(),
            exact.to_vec2::<f32>().unwrap(),
            "({m}, {n}, {k}): bf16 tensor vs its f32 widening"
        );
    }
}

#[test]
fn same_result_for_any_thread_count() {
    let (m, n, k) = (16, 700, 256);
    let x = Tensor::from_vec(data(m * k, 4), (m, k), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(data(n * k, 5), (n, k), &Device::Cpu).unwrap();
    let run = |t: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap();
        pool.install(|| linear(&x, &w, None).unwrap().to_vec2::<f32>().unwrap())
    };
    assert_eq!(run(1), run(3));
}

/// Decode-step shapes of the Qwen2.5-0.5B layers (16 rows): f32 vs bf16 weights per ISA.
/// `cargo test --release -p aha-model --lib matmul::tests::time_decode_shapes -- --ignored --nocapture`
#[test]
#[ignore]
fn time_decode_shapes() {
    for (n, k) in [(896, 896), (4864, 896), (896, 4864), (151936, 896)] {
        let m = 16;
        let x = data(m * k, 1);
        let wb = to_bf16(&data(n * k, 2));
        let wf = widened(&wb);
        for isa in ISAS.into_iter().filter(|i| i.available()) {
            for (name, w) in [
                ("f32", WeightRows::F32(&wf)),
                ("bf16", WeightRows::Bf16(&wb)),
            ] {
                let mut y = vec![0f32; m * n];
                let reps = (2_000_000_000 / (m * n * k)).max(3);
                multiply(isa, &x, w, &mut y, m, n, k);
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    multiply(isa, &x, w, &mut y, m, n, k);
                }
                let dt = t.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "{m}x{k} . {n}x{k}^T {isa:?} {name}: {:.2} ms, {:.1} GFLOP/s",
                    dt * 1e3,
                    2.0 * (m * n * k) as f64 / dt / 1e9
                );
            }
        }
    }
}
