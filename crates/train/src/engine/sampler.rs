//! Drawing one token from one row of logits (V), on the CPU: greedy, temperature, top-k, top-p.
//!
//! Everything is a pure function of the logits and the row's RNG. Ties between equal logits break
//! towards the lower token id, so the same logits always give the same token. Probabilities are
//! accumulated in f64. The returned logprob is over the full, untruncated tempered distribution
//! (see the engine's module doc for why).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::SamplingParams;

/// The token drawn and its logprob under `log_softmax(logits / T)` (T = 1 when greedy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    pub id: u32,
    pub logprob: f32,
}

/// The RNG of one completion: a ChaCha stream keyed by `(seed, prompt_index, sample_index)`
/// through SplitMix64, stable across platforms and library versions.
pub fn completion_rng(seed: u64, prompt_index: usize, sample_index: usize) -> ChaCha8Rng {
    let mut h = splitmix64(seed);
    h = splitmix64(h ^ (prompt_index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    h = splitmix64(h ^ (sample_index as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25));
    ChaCha8Rng::seed_from_u64(h)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in [0, 1) with 53 random bits.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Draw a token from `logits` (V). The RNG is not touched when greedy (temperature 0).
pub fn sample_token(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> Sampled {
    let greedy = params.temperature == 0.0;
    let inv_t = if greedy {
        1.0
    } else {
        1.0 / params.temperature as f64
    };
    // z = logits / T, kept implicit: z_i = logits[i] * inv_t.
    let (mut best, mut best_z) = (0usize, f64::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        let z = l as f64 * inv_t;
        if z > best_z {
            (best, best_z) = (i, z);
        }
    }
    WEIGHTS.with_borrow_mut(|w| {
        // exp(z - max) of every token, kept for sampling (the exps are most of this function's
        // time), and log Σ exp(z) from them.
        w.clear();
        w.extend(logits.iter().map(|&l| (l as f64 * inv_t - best_z).exp()));
        let sum: f64 = w.iter().sum();
        let log_z = best_z + sum.ln();
        let logprob_of = |i: usize| (logits[i] as f64 * inv_t - log_z) as f32;
        if greedy {
            return Sampled {
                id: best as u32,
                logprob: logprob_of(best),
            };
        }
        let truncate = params.top_k > 0 && params.top_k < logits.len() || params.top_p < 1.0;
        let id = if truncate {
            sample_truncated(logits, w, sum, params, uniform(rng))
        } else {
            sample_full(w, sum, uniform(rng))
        };
        Sampled {
            id: id as u32,
            logprob: logprob_of(id),
        }
    })
}

thread_local! {
    /// Scratch for [`sample_token`]'s V weights, reused across calls on a thread.
    static WEIGHTS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Inverse-CDF draw over the whole vocabulary in id order.
/// `w` holds each token's exp(z − max).
fn sample_full(w: &[f64], sum: f64, u: f64) -> usize {
    let target = u * sum;
    let mut acc = 0.0f64;
    let mut last_nonzero = 0;
    for (i, &p) in w.iter().enumerate() {
        if p > 0.0 {
            last_nonzero = i;
        }
        acc += p;
        if acc > target {
            return i;
        }
    }
    // Rounding left `target` just above the total: the last token with any mass.
    last_nonzero
}

/// Order by logit descending, then id ascending: a total order, so truncation is deterministic.
fn by_logit_desc(logits: &[f32]) -> impl Fn(&usize, &usize) -> std::cmp::Ordering + '_ {
    move |&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b))
}

/// Top-k then top-p (on the renormalised top-k mass, as transformers' warpers do), then an
/// inverse-CDF draw over the kept tokens in rank order.
/// `w` holds each token's exp(z − max).
fn sample_truncated(
    logits: &[f32],
    w: &[f64],
    full_sum: f64,
    params: &SamplingParams,
    u: f64,
) -> usize {
    let v = logits.len();
    let cmp = by_logit_desc(logits);
    let weight = |i: usize| w[i];
    let k = if params.top_k > 0 {
        params.top_k.min(v)
    } else {
        v
    };
    let mut ids: Vec<usize> = (0..v).collect();
    // Mass of the top-k set, the denominator of top-p.
    let kept_sum = if k < v {
        ids.select_nth_unstable_by(k - 1, &cmp);
        ids.truncate(k);
        ids.iter().map(|&i| weight(i)).sum::<f64>()
    } else {
        full_sum
    };
    let top_p = params.top_p as f64;
    // The nucleus is a prefix of the sorted order; sort only as much of it as needed, doubling,
    // because a full sort of a 150k vocabulary per token dominates a small model's decode step.
    let mut m = k.min(64);
    let keep = loop {
        if m < ids.len() {
            ids.select_nth_unstable_by(m - 1, &cmp);
        }
        ids[..m].sort_unstable_by(&cmp);
        let mut acc = 0.0f64;
        let mut found = None;
        for (rank, &i) in ids[..m].iter().enumerate() {
            if acc >= top_p * kept_sum {
                found = Some(rank);
                break;
            }
            acc += weight(i);
        }
        match found {
            Some(n) => break n,
            None if m >= ids.len() => break m,
            None => m = (m * 4).min(ids.len()),
        }
    };
    let kept = &ids[..keep.max(1)];
    let total: f64 = kept.iter().map(|&i| weight(i)).sum();
    let target = u * total;
    let mut acc = 0.0f64;
    for &i in kept {
        acc += weight(i);
        if acc > target {
            return i;
        }
    }
    kept[kept.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_p: f32, top_k: usize) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p,
            top_k,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_takes_argmax_with_ties_to_lowest_id() {
        let mut rng = completion_rng(0, 0, 0);
        let s = sample_token(&[0.0, 3.0, 1.0, 3.0], &params(0.0, 1.0, 0), &mut rng);
        assert_eq!(s.id, 1);
        // log_softmax at T=1: 3 - ln(1 + 2e^3 + e)
        let lse = (1.0f64 + 2.0 * 3f64.exp() + 1f64.exp()).ln();
        assert!((s.logprob as f64 - (3.0 - lse)).abs() < 1e-6);
    }

    #[test]
    fn logprob_is_tempered_and_untruncated() {
        let logits = [2.0f32, 1.0, 0.5, -1.0];
        let t = 0.7f64;
        let z: Vec<f64> = logits.iter().map(|&l| l as f64 / t).collect();
        let lse = z.iter().map(|x| x.exp()).sum::<f64>().ln();
        let mut rng = completion_rng(1, 2, 3);
        for _ in 0..50 {
            let s = sample_token(&logits, &params(0.7, 0.5, 2), &mut rng);
            // top_p 0.5 of the top-2 keeps only token 0, whose tempered prob is ~0.8
            assert_eq!(s.id, 0);
            assert!((s.logprob as f64 - (z[0] - lse)).abs() < 1e-6);
        }
    }

    #[test]
    fn frequencies_follow_the_distribution() {
        let logits = [0.0f32, (2.0f32).ln(), (3.0f32).ln(), f32::NEG_INFINITY];
        let mut rng = completion_rng(7, 0, 0);
        let mut counts = [0usize; 4];
        let n = 60_000;
        for _ in 0..n {
            counts[sample_token(&logits, &params(1.0, 1.0, 0), &mut rng).id as usize] += 1;
        }
        assert_eq!(counts[3], 0);
        for (i, want) in [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0].iter().enumerate() {
            let got = counts[i] as f64 / n as f64;
            assert!((got - want).abs() < 0.01, "token {i}: {got} vs {want}");
        }
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits: Vec<f32> = (0..200).map(|i| -(i as f32) * 0.05).collect();
        let mut rng = completion_rng(3, 0, 0);
        for _ in 0..2000 {
            assert!(sample_token(&logits, &params(1.0, 1.0, 5), &mut rng).id < 5);
        }
        // Probabilities ∝ e^{-0.05 i}: the nucleus of mass 0.3 is the smallest prefix reaching 0.3.
        let w: Vec<f64> = (0..200).map(|i| (-(i as f64) * 0.05).exp()).collect();
        let total: f64 = w.iter().sum();
        let mut acc = 0.0;
        let mut nucleus = 0;
        while acc < 0.3 * total {
            acc += w[nucleus];
            nucleus += 1;
        }
        let mut seen = [false; 200];
        for _ in 0..5000 {
            seen[sample_token(&logits, &params(1.0, 0.3, 0), &mut rng).id as usize] = true;
        }
        assert!(seen[..nucleus].iter().all(|&s| s));
        assert!(seen[nucleus..].iter().all(|&s| !s));
    }

    #[test]
    fn truncation_ties_break_to_lower_ids() {
        let logits = [1.0f32; 10];
        let mut rng = completion_rng(0, 0, 0);
        for _ in 0..500 {
            assert!(sample_token(&logits, &params(1.0, 1.0, 3), &mut rng).id < 3);
        }
    }

    #[test]
    fn streams_differ_by_prompt_and_sample() {
        let a = completion_rng(5, 0, 1).next_u64();
        assert_eq!(a, completion_rng(5, 0, 1).next_u64());
        assert_ne!(a, completion_rng(5, 1, 0).next_u64());
        assert_ne!(a, completion_rng(5, 0, 2).next_u64());
        assert_ne!(a, completion_rng(6, 0, 1).next_u64());
    }
}
