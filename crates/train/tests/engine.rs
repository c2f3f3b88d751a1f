//! The rollout engine against independent references: the training forward's logprobs and greedy
//! argmax, itself run with other batch compositions, and the EOS / stop / length contracts.

mod engine_support;

use aha_model::Model;
use aha_train::engine::{
    generate_groups, generate_groups_from, EngineError, FinishReason, Group, SamplingParams,
    StopMatcher,
};
use candle_core::{Device, Tensor};
use engine_support::{prompts, random_model, tiny_config};

fn params(temperature: f32, max_new_tokens: usize, seed: u64) -> SamplingParams {
    SamplingParams {
        temperature,
        max_new_tokens,
        seed,
        ..SamplingParams::default()
    }
}

/// Greedy decoding by re-running the full training forward on the whole sequence every step.
fn reference_greedy(model: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let t = seq.len();
        let ids = Tensor::from_vec(seq.clone(), (1, t), &Device::Cpu).unwrap();
        let hidden = model.forward(&ids, None, None).unwrap();
        let logits: Vec<f32> = model
            .logits(&hidden.narrow(1, t - 1, 1).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let best = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
            .unwrap();
        seq.push(best as u32);
    }
    seq[prompt.len()..].to_vec()
}

#[test]
fn temperature_zero_is_greedy_argmax_of_the_training_forward() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 1);
    let ps = prompts(&[5, 17, 1, 9], cfg.vocab_size, 2);
    let groups = generate_groups(&model, &ps, 3, &params(0.0, 20, 0), None).unwrap();
    assert_eq!(groups.len(), 4);
    for (group, prompt) in groups.iter().zip(&ps) {
        assert_eq!(&group.prompt_ids, prompt);
        assert_eq!(group.completions.len(), 3);
        let want = reference_greedy(&model, prompt, 20);
        for (s, c) in group.completions.iter().enumerate() {
            assert_eq!(c.sample_index, s);
            assert_eq!(c.ids, want, "prompt {}", group.prompt_index);
            assert_eq!(c.finish_reason, FinishReason::Length);
        }
    }
}

fn assert_close_groups(a: &[Group], b: &[Group], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (ga, gb) in a.iter().zip(b) {
        assert_eq!(ga.prompt_index, gb.prompt_index);
        for (ca, cb) in ga.completions.iter().zip(&gb.completions) {
            assert_eq!(
                ca.ids, cb.ids,
                "prompt {} sample {}",
                ga.prompt_index, ca.sample_index
            );
            assert_eq!(ca.finish_reason, cb.finish_reason);
            for (x, y) in ca.logprobs.iter().zip(&cb.logprobs) {
                assert!((x - y).abs() <= tol, "logprob {x} vs {y}");
            }
        }
    }
}

#[test]
fn logprobs_equal_the_training_forward_at_temperature_one() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 3);
    let ps = prompts(&[4, 11, 7], cfg.vocab_size, 4);
    let groups = generate_groups(&model, &ps, 4, &params(1.0, 16, 9), None).unwrap();
    let mut distinct = std::collections::BTreeSet::new();
    for group in &groups {
        for c in &group.completions {
            distinct.insert(c.ids.clone());
            let seq: Vec<u32> = group.prompt_ids.iter().chain(&c.ids).copied().collect();
            let t = seq.len();
            let ids = Tensor::from_vec(seq, (1, t), &Device::Cpu).unwrap();
            let lp: Vec<f32> = model
                .token_logprobs(&ids)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let p = group.prompt_ids.len();
            assert_eq!(c.logprobs.len(), c.ids.len());
            for (j, &got) in c.logprobs.iter().enumerate() {
                let want = lp[p + j - 1];
                assert!((got - want).abs() < 1e-4, "token {j}: {got} vs {want}");
            }
        }
    }
    // Sampling really sampled: 12 completions of 16 tokens are not all alike.
    assert!(
        distinct.len() > 6,
        "only {} distinct completions",
        distinct.len()
    );
}

#[test]
fn tempered_logprobs_use_the_same_temperature() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 3);
    let ps = prompts(&[6], cfg.vocab_size, 5);
    let t = 0.6f32;
    let groups = generate_groups(&model, &ps, 2, &params(t, 8, 1), None).unwrap();
    for c in &groups[0].completions {
        let seq: Vec<u32> = ps[0].iter().chain(&c.ids).copied().collect();
        let n = seq.len();
        let ids = Tensor::from_vec(seq, (1, n), &Device::Cpu).unwrap();
        let logits = model
            .logits(&model.forward(&ids, None, None).unwrap())
            .unwrap();
        let lp = candle_nn::ops::log_softmax(&(logits / t as f64).unwrap(), 2).unwrap();
        let lp: Vec<Vec<f32>> = lp.squeeze(0).unwrap().to_vec2().unwrap();
        for (j, (&id, &got)) in c.ids.iter().zip(&c.logprobs).enumerate() {
            let want = lp[ps[0].len() + j - 1][id as usize];
            assert!((got - want).abs() < 1e-4, "token {j}: {got} vs {want}");
        }
    }
}

#[test]
fn same_seed_same_output_whatever_the_batch() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 5);
    let ps = prompts(&[3, 20, 8, 14, 1], cfg.vocab_size, 6);
    for temperature in [0.0, 1.0] {
        let p = SamplingParams {
            top_p: 0.9,
            top_k: 50,
            ..params(temperature, 12, 42)
        };
        let together = generate_groups(&model, &ps, 3, &p, None).unwrap();
        let again = generate_groups(&model, &ps, 3, &p, None).unwrap();
        assert_eq!(together, again, "not reproducible");
        let mut alone = Vec::new();
        for (i, prompt) in ps.iter().enumerate() {
            alone.extend(
                generate_groups_from(&model, std::slice::from_ref(prompt), i, 3, &p, None).unwrap(),
            );
        }
        assert_close_groups(&together, &alone, 1e-5);
        let pairs: Vec<Group> = ps
            .chunks(2)
            .enumerate()
            .flat_map(|(c, chunk)| generate_groups_from(&model, chunk, 2 * c, 3, &p, None).unwrap())
            .collect();
        assert_close_groups(&together, &pairs, 1e-5);
        let other_seed = generate_groups(
            &model,
            &ps,
            3,
            &SamplingParams {
                seed: 43,
                ..p.clone()
            },
            None,
        )
        .unwrap();
        if temperature > 0.0 {
            assert_ne!(together, other_seed);
        }
    }
}

#[test]
fn eos_ends_a_row_and_equals_the_truncated_free_run() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 7);
    let ps = prompts(&[4, 9, 2], cfg.vocab_size, 8);
    let free = generate_groups(&model, &ps, 6, &params(1.0, 24, 3), None).unwrap();
    // EOS ids: tokens sampled in the middle of some completions, so rows end at different steps
    // (exercising cache compaction) while others run to the length limit.
    let eos = vec![
        free[0].completions[0].ids[5],
        free[1].completions[2].ids[10],
    ];
    let p = SamplingParams {
        eos_token_ids: eos.clone(),
        ..params(1.0, 24, 3)
    };
    let stopped = generate_groups(&model, &ps, 6, &p, None).unwrap();
    let (mut n_stop, mut n_len) = (0, 0);
    for (gf, gs) in free.iter().zip(&stopped) {
        for (cf, cs) in gf.completions.iter().zip(&gs.completions) {
            match cf.ids.iter().position(|t| eos.contains(t)) {
                Some(at) => {
                    assert_eq!(cs.ids, cf.ids[..=at]);
                    assert_eq!(cs.finish_reason, FinishReason::Stop);
                    n_stop += 1;
                }
                None => {
                    assert_eq!(cs.ids, cf.ids);
                    assert_eq!(cs.finish_reason, FinishReason::Length);
                    n_len += 1;
                }
            }
            assert_eq!(cs.logprobs.len(), cs.ids.len());
            for (a, b) in cs.logprobs.iter().zip(&cf.logprobs) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    }
    assert!(n_stop >= 2 && n_len >= 1, "stop {n_stop} length {n_len}");
}

/// Byte-level text: ids below 256 are bytes, the rest decode to a tag.
fn decode(ids: &[u32]) -> Result<String, String> {
    let mut bytes = Vec::new();
    for &i in ids {
        if i < 256 {
            bytes.push(i as u8);
        } else {
            bytes.extend(format!("<{i}>").bytes());
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn stop_strings_end_a_row_at_the_completing_token() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 11);
    let ps = prompts(&[5, 3], cfg.vocab_size, 12);
    let free = generate_groups(&model, &ps, 4, &params(1.0, 20, 5), None).unwrap();
    let c = &free[0].completions[1].ids;
    let stop = decode(&c[6..8]).unwrap();
    let stops = vec![stop.clone()];
    let matcher = StopMatcher::with_decoder(&stops, decode).unwrap();
    let p = SamplingParams {
        stop_strings: stops.clone(),
        ..params(1.0, 20, 5)
    };
    let stopped = generate_groups(&model, &ps, 4, &p, Some(&matcher)).unwrap();
    let mut n_stop = 0;
    for (gf, gs) in free.iter().zip(&stopped) {
        for (cf, cs) in gf.completions.iter().zip(&gs.completions) {
            let first = (1..=cf.ids.len()).find(|&n| decode(&cf.ids[..n]).unwrap().contains(&stop));
            match first {
                Some(n) => {
                    assert_eq!(cs.ids, cf.ids[..n]);
                    assert_eq!(cs.finish_reason, FinishReason::Stop);
                    n_stop += 1;
                }
                None => assert_eq!(cs.ids, cf.ids),
            }
        }
    }
    assert!(n_stop >= 1);
    // Stop strings without a tokenizer to match them would be silently ignored: refuse.
    assert!(matches!(
        generate_groups(&model, &ps, 4, &p, None),
        Err(EngineError::Params(_))
    ));
}

#[test]
fn bad_requests_are_refused_before_compute() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 1);
    let ok = prompts(&[4], cfg.vocab_size, 1);
    let run =
        |ps: &[Vec<u32>], g: usize, p: &SamplingParams| generate_groups(&model, ps, g, p, None);
    let err = run(&[vec![1, 2], vec![]], 2, &params(1.0, 4, 0)).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Prompt {
                prompt_index: 1,
                ..
            }
        ),
        "{err}"
    );
    let long = vec![vec![1u32; 90]];
    let err = run(&long, 1, &params(1.0, 7, 0)).unwrap_err();
    assert!(err.to_string().contains("at most 89 tokens"), "{err}");
    assert!(run(&long, 1, &params(1.0, 6, 0)).is_ok());
    let err = run(&[vec![300]], 1, &params(1.0, 4, 0)).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    assert!(matches!(
        run(&ok, 0, &params(1.0, 4, 0)),
        Err(EngineError::Params(_))
    ));
    assert!(matches!(
        run(&ok, 1, &params(1.0, 0, 0)),
        Err(EngineError::Params(_))
    ));
    assert!(matches!(
        run(&ok, 1, &params(-1.0, 4, 0)),
        Err(EngineError::Params(_))
    ));
    let tight = SamplingParams {
        max_cache_bytes: Some(1000),
        ..params(1.0, 4, 0)
    };
    let err = run(&ok, 8, &tight).unwrap_err();
    assert!(
        matches!(err, EngineError::CacheTooLarge { rows: 8, .. }),
        "{err}"
    );
}

#[test]
fn one_new_token_and_single_token_prompts() {
    let cfg = tiny_config();
    let model = random_model(&cfg, 2);
    let ps = prompts(&[1, 1, 6], cfg.vocab_size, 3);
    let groups = generate_groups(&model, &ps, 2, &params(1.0, 1, 0), None).unwrap();
    for g in &groups {
        for c in &g.completions {
            assert_eq!(c.ids.len(), 1);
            assert_eq!(c.finish_reason, FinishReason::Length);
        }
    }
}
