//! The engine on real checkpoints and tokenizers: greedy rollouts equal transformers'
//! `generate(do_sample=False)` on the model crate's committed fixtures, stop strings through a
//! real BPE tokenizer, chat prompts rendered with the checkpoint's template.

use std::path::{Path, PathBuf};

use aha_model::load::load_model;
use aha_model::tokenizer::{ChatMessage, Tokenizer};
use aha_train::engine::{generate_groups, FinishReason, Prompt, SamplingParams, StopMatcher};
use candle_core::Device;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

#[derive(serde::Deserialize)]
struct Reference {
    greedy: Vec<Greedy>,
}

#[derive(serde::Deserialize)]
struct Greedy {
    prompt_ids: Vec<u32>,
    output_ids: Vec<u32>,
}

#[test]
fn greedy_rollouts_equal_transformers_generate() {
    for name in [
        "qwen2_tied_f32",
        "llama_bf16_sharded",
        "qwen3_qknorm_f32",
        "qwen2_mha_t4config",
    ] {
        let dir = fixture(name);
        let model = load_model(&dir, &Device::Cpu, true).unwrap();
        let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
        let r: Reference = serde_json::from_str(&text).unwrap();
        let n = r.greedy[0].output_ids.len();
        // Prompts of different lengths in one left-padded batch, each forked into 3 rows.
        let prompts: Vec<Vec<u32>> = r.greedy.iter().map(|g| g.prompt_ids.clone()).collect();
        assert!(prompts.iter().any(|p| p.len() != prompts[0].len()));
        let params = SamplingParams {
            temperature: 0.0,
            max_new_tokens: n,
            ..SamplingParams::default()
        };
        let groups = generate_groups(&model, &prompts, 3, &params, None).unwrap();
        for (group, g) in groups.iter().zip(&r.greedy) {
            for c in &group.completions {
                assert_eq!(c.ids, g.output_ids, "{name}: prompt {}", group.prompt_index);
                assert_eq!(c.finish_reason, FinishReason::Length);
            }
        }
    }
}

#[test]
fn stop_strings_through_a_real_bpe_tokenizer() {
    let tok = Tokenizer::from_dir(&fixture("tokenizer")).unwrap();
    let text = "Q:4821+5377=<think>1+7=8, 2+7=9</think> so\n\nthe <answer>10198</answer>";
    let ids = tok.encode(text, false).unwrap();
    for stop in [
        "+53",
        "=8, 2",
        "</think> so\n\n",
        "answer",
        "98<",
        "10198</answer>",
    ] {
        let m = StopMatcher::new(&tok, &[stop.to_string()]).unwrap();
        let engine = (1..=ids.len()).find(|&n| m.is_stopped(&ids[..n]).unwrap());
        let full = (1..=ids.len()).find(|&n| tok.decode(&ids[..n], false).unwrap().contains(stop));
        assert!(full.is_some(), "{stop:?} not in the text");
        assert_eq!(engine, full, "stop {stop:?}");
    }
}

#[test]
fn chat_prompts_use_the_checkpoint_template() {
    let tok = Tokenizer::from_dir(&fixture("tokenizer")).unwrap();
    let messages = vec![
        ChatMessage::new("system", "Think, then answer."),
        ChatMessage::new("user", "Q:12+34="),
    ];
    let ids = Prompt::Messages(messages.clone()).to_ids(&tok).unwrap();
    let rendered = tok.apply_chat_template(&messages, true).unwrap();
    assert!(
        rendered.ends_with("<|im_start|>assistant\n"),
        "{rendered:?}"
    );
    assert_eq!(ids, tok.encode(&rendered, false).unwrap());
    assert_eq!(tok.decode(&ids, false).unwrap(), rendered);
    let text = Prompt::Text("Q:1234+5678=".into()).to_ids(&tok).unwrap();
    assert_eq!(text, tok.encode("Q:1234+5678=", true).unwrap());
}
