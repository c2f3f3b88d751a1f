//! Bad checkpoints and inputs give errors that name the file and the tensor or field, never a
//! panic. Each test breaks a copy of a committed fixture in one way.

mod support;

use std::collections::BTreeMap;

use aha_model::load::load_model;
use aha_model::tokenizer::{ChatMessage, Tokenizer};
use aha_model::Error;
use candle_core::{Device, Tensor};
use support::{fixture, Scratch};

const QWEN2: &str = "qwen2_tied_f32";

fn load_err(dir: &std::path::Path) -> Error {
    match load_model(dir, &Device::Cpu, false) {
        Ok(_) => panic!("{} loaded, expected an error", dir.display()),
        Err(e) => e,
    }
}

/// Change config.json of the copy with `edit`.
fn edit_config(s: &Scratch, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = s.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn config_err(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let s = Scratch::copy_of(QWEN2);
    edit_config(&s, edit);
    let e = load_err(s.path()).chain();
    assert!(e.contains("config.json"), "{e}");
    e
}

fn rewrite_weights(s: &Scratch, edit: impl FnOnce(&mut BTreeMap<String, Tensor>)) {
    let path = s.path().join("model.safetensors");
    let mut t: BTreeMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect();
    edit(&mut t);
    let t: std::collections::HashMap<_, _> = t.into_iter().collect();
    candle_core::safetensors::save(&t, &path).unwrap();
}

#[test]
fn missing_config_names_the_file() {
    let s = Scratch::copy_of(QWEN2);
    std::fs::remove_file(s.path().join("config.json")).unwrap();
    let e = load_err(s.path());
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.chain().contains("config.json"), "{}", e.chain());
}

#[test]
fn malformed_config_json_names_the_file() {
    let s = Scratch::copy_of(QWEN2);
    std::fs::write(s.path().join("config.json"), "{\"vocab_size\": 320,").unwrap();
    let e = load_err(s.path()).chain();
    assert!(e.contains("config.json: invalid JSON"), "{e}");
}

#[test]
fn wrong_typed_fields_name_the_field() {
    for (field, value) in [
        ("hidden_size", serde_json::json!("32")),
        ("tie_word_embeddings", serde_json::json!("yes")),
        ("eos_token_id", serde_json::json!(["a"])),
        ("rms_norm_eps", serde_json::json!([1e-6])),
        ("num_key_value_heads", serde_json::json!(3)),
    ] {
        let e = config_err(|c| {
            c.insert(field.into(), value.clone());
        });
        assert!(e.contains(&format!("field `{field}`")), "{field}: {e}");
    }
    let e = config_err(|c| {
        c.remove("num_hidden_layers");
    });
    assert!(e.contains("field `num_hidden_layers`: missing"), "{e}");
}

/// Edits a config.json object into one that aha must refuse.
type ConfigEdit = Box<dyn Fn(&mut serde_json::Map<String, serde_json::Value>)>;

#[test]
fn unsupported_features_are_refused() {
    let cases: Vec<(&str, ConfigEdit)> = vec![
        (
            "architecture `GPT2LMHeadModel`",
            Box::new(|c| {
                c.insert(
                    "architectures".into(),
                    serde_json::json!(["GPT2LMHeadModel"]),
                );
            }),
        ),
        (
            "model_type `mistral`",
            Box::new(|c| {
                c.remove("architectures");
                c.insert("model_type".into(), serde_json::json!("mistral"));
            }),
        ),
        (
            "rope_parameters.rope_type `llama3`",
            Box::new(|c| {
                c.insert(
                    "rope_parameters".into(),
                    serde_json::json!({"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}),
                );
            }),
        ),
        (
            "rope_scaling.rope_type `linear`",
            Box::new(|c| {
                c.insert(
                    "rope_scaling".into(),
                    serde_json::json!({"type": "linear", "factor": 2.0}),
                );
            }),
        ),
        (
            "sliding-window attention",
            Box::new(|c| {
                c.insert("use_sliding_window".into(), serde_json::json!(true));
                c.insert("sliding_window".into(), serde_json::json!(64));
                c.insert("max_window_layers".into(), serde_json::json!(0));
            }),
        ),
        (
            "hidden_act `gelu`",
            Box::new(|c| {
                c.insert("hidden_act".into(), serde_json::json!("gelu"));
            }),
        ),
    ];
    for (expect, edit) in cases {
        let s = Scratch::copy_of(QWEN2);
        edit_config(&s, edit);
        let e = load_err(s.path());
        assert!(matches!(e, Error::Unsupported { .. }), "{expect}: {e:?}");
        let e = e.chain();
        assert!(
            e.contains("config.json") && e.contains(expect),
            "{expect}: {e}"
        );
    }
    // A window as long as the context changes nothing and is accepted.
    let s = Scratch::copy_of(QWEN2);
    edit_config(&s, |c| {
        c.insert("use_sliding_window".into(), serde_json::json!(true));
        c.insert("sliding_window".into(), serde_json::json!(128));
    });
    load_model(s.path(), &Device::Cpu, false).unwrap();
}

#[test]
fn missing_misshapen_and_unexpected_tensors_are_named() {
    let name = "model.layers.1.self_attn.k_proj.bias";
    let s = Scratch::copy_of(QWEN2);
    rewrite_weights(&s, |t| {
        t.remove(name);
    });
    let e = load_err(s.path()).chain();
    assert!(
        e.contains("model.safetensors") && e.contains(name) && e.contains("missing"),
        "{e}"
    );

    let s = Scratch::copy_of(QWEN2);
    rewrite_weights(&s, |t| {
        t.insert(
            name.into(),
            Tensor::zeros(17, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load_err(s.path()).chain();
    assert!(e.contains(name) && e.contains("expected shape [16]"), "{e}");

    let extra = "model.layers.0.self_attn.o_proj.bias";
    let s = Scratch::copy_of(QWEN2);
    rewrite_weights(&s, |t| {
        t.insert(
            extra.into(),
            Tensor::zeros(32, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load_err(s.path()).chain();
    assert!(
        e.contains("model.safetensors") && e.contains(extra) && e.contains("unexpected"),
        "{e}"
    );

    // Rotary inv_freq buffers that old transformers saved are harmless and ignored.
    let s = Scratch::copy_of(QWEN2);
    rewrite_weights(&s, |t| {
        let f = Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap();
        t.insert("model.layers.0.self_attn.rotary_emb.inv_freq".into(), f);
    });
    load_model(s.path(), &Device::Cpu, false).unwrap();
}

#[test]
fn corrupt_or_missing_weights_name_the_file() {
    let s = Scratch::copy_of(QWEN2);
    let path = s.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(s.path()).chain();
    assert!(
        e.contains("model.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );

    std::fs::remove_file(&path).unwrap();
    let e = load_err(s.path()).chain();
    assert!(
        e.contains("model.safetensors") && e.contains("no weights"),
        "{e}"
    );
}

#[test]
fn sharded_index_problems_name_the_index_or_shard() {
    let name = "llama_bf16_sharded";
    let s = Scratch::copy_of(name);
    std::fs::remove_file(s.path().join("model-00002-of-00004.safetensors")).unwrap();
    let e = load_err(s.path()).chain();
    assert!(
        e.contains("model.safetensors.index.json")
            && e.contains("model-00002-of-00004.safetensors does not exist"),
        "{e}"
    );

    // The index promises a tensor its shard does not hold.
    let s = Scratch::copy_of(name);
    let index = s.path().join("model.safetensors.index.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    v["weight_map"]["model.layers.9.mlp.up_proj.weight"] =
        serde_json::json!("model-00001-of-00004.safetensors");
    std::fs::write(&index, v.to_string()).unwrap();
    let e = load_err(s.path()).chain();
    assert!(
        e.contains("model-00001-of-00004.safetensors")
            && e.contains("model.layers.9.mlp.up_proj.weight")
            && e.contains("listed in model.safetensors.index.json"),
        "{e}"
    );

    std::fs::write(&index, "{\"weight_map\": 3}").unwrap();
    let e = load_err(s.path()).chain();
    assert!(
        e.contains("model.safetensors.index.json") && e.contains("`weight_map`"),
        "{e}"
    );
}

#[test]
fn malformed_generation_config_names_the_file() {
    let s = Scratch::copy_of(QWEN2);
    std::fs::write(
        s.path().join("generation_config.json"),
        "{\"eos_token_id\": \"two\"}",
    )
    .unwrap();
    let e = load_err(s.path()).chain();
    assert!(
        e.contains("generation_config.json") && e.contains("`eos_token_id`"),
        "{e}"
    );
}

#[test]
fn out_of_vocab_ids_and_too_long_sequences_are_errors() {
    let model = load_model(&fixture(QWEN2), &Device::Cpu, false).unwrap();
    let ids = Tensor::new(&[[1u32, 2, 320]], &Device::Cpu).unwrap();
    let e = model.token_logprobs(&ids).unwrap_err().to_string();
    assert!(
        e.contains("token id 320") && e.contains("vocab_size 320"),
        "{e}"
    );
    let long: Vec<u32> = (0..129).map(|i| i % 300).collect();
    let ids = Tensor::from_vec(long, (1, 129), &Device::Cpu).unwrap();
    let e = model.token_logprobs(&ids).unwrap_err().to_string();
    assert!(e.contains("max_position_embeddings (128)"), "{e}");
}

#[test]
fn tokenizer_errors_name_the_file() {
    let s = Scratch::copy_of(QWEN2);
    std::fs::remove_file(s.path().join("tokenizer.json")).unwrap();
    let e = Tokenizer::from_dir(s.path()).unwrap_err().chain();
    assert!(e.contains("tokenizer.json"), "{e}");

    let s = Scratch::copy_of(QWEN2);
    std::fs::write(s.path().join("tokenizer.json"), "{\"model\": 1}").unwrap();
    let e = Tokenizer::from_dir(s.path()).unwrap_err().chain();
    assert!(e.contains("tokenizer.json: tokenizer"), "{e}");

    let s = Scratch::copy_of(QWEN2);
    std::fs::write(s.path().join("tokenizer_config.json"), "[1, 2]").unwrap();
    let e = Tokenizer::from_dir(s.path()).unwrap_err().chain();
    assert!(e.contains("tokenizer_config.json"), "{e}");

    // An undefined variable in a chat template is an error, not silently empty output.
    let s = Scratch::copy_of(QWEN2);
    std::fs::write(
        s.path().join("chat_template.jinja"),
        "{% for m in messages %}{{ m.content + system_suffix }}{% endfor %}",
    )
    .unwrap();
    let tok = Tokenizer::from_dir(s.path()).unwrap();
    let e = tok
        .apply_chat_template(&[ChatMessage::new("user", "hi")], true)
        .unwrap_err()
        .chain();
    assert!(
        e.contains("chat_template") && e.contains("undefined"),
        "{e}"
    );

    let e = tok.decode(&[5, 999], false).unwrap_err().chain();
    assert!(e.contains("999"), "{e}");
}
