//! GRPO end to end on tiny models: the update pushes the policy toward reward, the trainer's
//! variants run, and a resumed run reproduces an uninterrupted one.

mod common;

use std::path::{Path, PathBuf};

use aha_train::algo::{group_advantages, AdvantageNorm};
use aha_train::config::{GrpoConfig, RunConfig, TrainConfig};
use aha_train::engine::{generate_groups, SamplingParams};
use aha_train::grpo::update::{update, TrainSeq, UpdateContext};
use aha_train::metrics::{read_metrics, TIMING_FIELDS};
use aha_train::optim::OptimConfig;
use aha_train::run::{train, RunOptions};

fn smoke_config(overrides: &[&str]) -> TrainConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml");
    let mut o: Vec<String> = vec!["output.progress=false".into()];
    o.extend(overrides.iter().map(|s| s.to_string()));
    TrainConfig::load(&path, &o).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aha_grpo_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn update_raises_a_reward_that_prefers_one_token() {
    let cfg = common::tiny_config(16);
    let model = common::tiny_model(&cfg, 3);
    let grpo: GrpoConfig = toml::from_str("micro_batch_size = 64").unwrap();
    let optim = OptimConfig {
        lr: 5e-3,
        ..OptimConfig::default()
    };
    let mut updater = optim.updater(model.vars(), 20).unwrap();
    let prompts = vec![vec![2, 3], vec![4, 5], vec![2, 5, 6], vec![3]];
    let (g, target) = (8, 7u32);
    let mut means = Vec::new();
    for step in 0..12u64 {
        let params = SamplingParams {
            max_new_tokens: 6,
            seed: step,
            ..SamplingParams::default()
        };
        let groups = generate_groups(&model, &prompts, g, &params, None).unwrap();
        let rewards: Vec<Option<f32>> = groups
            .iter()
            .flat_map(|gr| &gr.completions)
            .map(|c| {
                Some(c.ids.iter().filter(|&&t| t == target).count() as f32 / c.ids.len() as f32)
            })
            .collect();
        means.push(rewards.iter().flatten().sum::<f32>() / rewards.len() as f32);
        let adv = group_advantages(&rewards, g, AdvantageNorm::MeanStd, 1e-4).unwrap();
        let seqs: Vec<TrainSeq<'_>> = groups
            .iter()
            .flat_map(|gr| gr.completions.iter().map(move |c| (gr, c)))
            .zip(&adv)
            .map(|((gr, c), &a)| TrainSeq {
                prompt: &gr.prompt_ids,
                completion: &c.ids,
                rollout_logprobs: &c.logprobs,
                advantage: a,
            })
            .collect();
        let ctx = UpdateContext {
            temperature: 1.0,
            max_new_tokens: 6,
            pad_id: 0,
        };
        let stats = update(&model, None, &mut updater, &seqs, &grpo, ctx).unwrap();
        assert_eq!((stats.updates, stats.skipped_updates), (1, 0));
        // One on-policy pass: the ratio is 1, nothing is clipped.
        assert_eq!(stats.clip_fraction, 0.0);
    }
    let first = means[..3].iter().sum::<f32>() / 3.0;
    let last = means[means.len() - 3..].iter().sum::<f32>() / 3.0;
    assert!(
        last > 2.0 * first && last > 0.3,
        "reward {first:.3} → {last:.3}: {means:?}"
    );
}

fn comparable(path: &Path) -> Vec<serde_json::Value> {
    read_metrics(path)
        .unwrap()
        .into_iter()
        .map(|m| {
            let mut v = serde_json::to_value(m).unwrap();
            for f in TIMING_FIELDS {
                v.as_object_mut().unwrap().remove(*f);
            }
            v
        })
        .collect()
}

#[test]
fn resume_reproduces_an_uninterrupted_run() {
    let whole = temp_dir("whole");
    let cfg = smoke_config(&["steps=4", "output.checkpoint_every=2"]);
    let opts = |d: &Path, resume| RunOptions::new(Some(d.to_path_buf()), resume);
    let s = train(cfg.clone(), opts(&whole, false)).unwrap();
    assert_eq!((s.steps, s.steps_run), (4, 4));

    let split = temp_dir("split");
    let half = smoke_config(&["steps=2", "output.checkpoint_every=2"]);
    train(half, opts(&split, false)).unwrap();
    // A fresh start refuses to overwrite the run.
    let err = train(cfg.clone(), opts(&split, false)).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    let s = train(cfg, opts(&split, true)).unwrap();
    assert_eq!((s.steps, s.steps_run), (4, 2));
    assert!(s.resumed_from.unwrap().ends_with("step_000002"));

    let a = comparable(&whole.join("metrics.jsonl"));
    let b = comparable(&split.join("metrics.jsonl"));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
    assert!(whole
        .join("checkpoints/step_000004/model.safetensors")
        .is_file());
    assert!(whole
        .join("checkpoints/step_000004/optimizer.safetensors")
        .is_file());
    assert!(whole.join("config.toml").is_file());
    // The saved checkpoint is an ordinary HF checkpoint.
    aha_model::load::load_model(
        &whole.join("checkpoints/step_000004"),
        &candle_core::Device::Cpu,
        false,
    )
    .unwrap();
    std::fs::remove_dir_all(&whole).unwrap();
    std::fs::remove_dir_all(&split).unwrap();
}

#[test]
fn variants_run_kl_multi_pass_dynamic_sampling() {
    let dir = temp_dir("variants");
    let cfg = smoke_config(&[
        "steps=2",
        "grpo.beta=0.04",
        "grpo.reference_reset_every=1",
        "grpo.passes=2",
        "grpo.minibatches=2",
        "grpo.micro_batch_size=3",
        "grpo.filter=drop_uniform",
        "grpo.max_refill_rounds=1",
        "grpo.aggregation=token_mean",
        "grpo.overlong={ kind = \"soft_penalty\", buffer = 8, factor = 1.0 }",
    ]);
    assert_eq!(cfg.grpo.passes, 2);
    let s = train(cfg, RunOptions::new(Some(dir.clone()), false)).unwrap();
    let m = s.last.unwrap();
    assert!(m.kl.is_some_and(|k| k.is_finite() && k >= 0.0), "{m:?}");
    assert!(m.groups_generated >= 4 && m.groups_trained <= 4);
    assert!(dir
        .join("checkpoints/step_000002/reference.safetensors")
        .is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
