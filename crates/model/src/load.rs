//! Read a Hugging Face checkpoint directory: `config.json`, the weights (`model.safetensors`, or
//! shards listed by `model.safetensors.index.json`) and `generation_config.json`.
//!
//! Weights stored as f32, bf16 or f16 are converted to f32 (aha computes in f32). Every error
//! names the file and, where there is one, the tensor or field. The tokenizer is read separately
//! by [`crate::tokenizer::Tokenizer::from_dir`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::decoder::weight_shapes;
use crate::json_fields::Fields;
use crate::{Error, Model, ModelConfig, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
pub const GENERATION_FILE: &str = "generation_config.json";

/// Sampling defaults a checkpoint ships in `generation_config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub max_new_tokens: Option<usize>,
}

impl GenerationConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: path.into(),
                source,
            })?;
        let f = Fields::new(&value, path)?;
        Ok(Self {
            bos_token_id: f.opt_token_id("bos_token_id")?,
            eos_token_ids: f.token_ids("eos_token_id")?,
            pad_token_id: f.opt_token_id("pad_token_id")?,
            do_sample: f.opt_bool("do_sample")?,
            temperature: f.opt_f64("temperature")?,
            top_p: f.opt_f64("top_p")?,
            top_k: f.opt_usize("top_k")?,
            max_new_tokens: f.opt_usize("max_new_tokens")?,
        })
    }

    /// `generation_config.json` as transformers writes it (unset fields left out).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            if !v.is_null() {
                obj.insert(k.into(), v);
            }
        };
        put("bos_token_id", serde_json::json!(self.bos_token_id));
        put(
            "eos_token_id",
            match self.eos_token_ids.as_slice() {
                [] => serde_json::Value::Null,
                [one] => serde_json::json!(one),
                many => serde_json::json!(many),
            },
        );
        put("pad_token_id", serde_json::json!(self.pad_token_id));
        put("do_sample", serde_json::json!(self.do_sample));
        put("temperature", serde_json::json!(self.temperature));
        put("top_p", serde_json::json!(self.top_p));
        put("top_k", serde_json::json!(self.top_k));
        put("max_new_tokens", serde_json::json!(self.max_new_tokens));
        serde_json::Value::Object(obj)
    }
}

/// A checkpoint as read from disk, before it becomes a [`Model`].
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: ModelConfig,
    /// Every weight by HF name, converted to f32. Rotary `inv_freq` buffers are dropped.
    pub tensors: BTreeMap<String, Tensor>,
    /// The file each tensor came from, for error messages.
    pub tensor_files: BTreeMap<String, PathBuf>,
    /// From `generation_config.json`; default when the file is absent.
    pub generation: GenerationConfig,
}

impl Checkpoint {
    /// Build the decoder, checking that the weights are exactly the architecture's: a missing,
    /// misshapen or unexpected tensor is an error naming its file.
    pub fn into_model(self, trainable: bool) -> Result<Model> {
        let expected: BTreeMap<String, Vec<usize>> =
            weight_shapes(&self.config).into_iter().collect();
        for name in self.tensors.keys() {
            let tied_head = name == "lm_head.weight" && self.config.tie_word_embeddings;
            if !expected.contains_key(name) && !tied_head {
                return Err(Error::Tensor {
                    path: self.file_of(name),
                    tensor: name.clone(),
                    message: format!(
                        "unexpected for {} with this config.json (an option aha does not \
                         implement, or a config that does not match the weights)",
                        self.config.architecture.hf_class()
                    ),
                });
            }
        }
        Model::from_tensors(&self.config, &self.tensors, trainable).map_err(|e| match e {
            Error::Tensor {
                path,
                tensor,
                message,
            } if path.as_os_str() == "<weights>" => Error::Tensor {
                path: self.file_of(&tensor),
                tensor,
                message,
            },
            other => other,
        })
    }

    /// The file holding `tensor`, or the weights file(s) that should have held it.
    fn file_of(&self, tensor: &str) -> PathBuf {
        match self.tensor_files.get(tensor) {
            Some(p) => p.clone(),
            None if self.dir.join(WEIGHTS_INDEX_FILE).exists() => self.dir.join(WEIGHTS_INDEX_FILE),
            None => self.dir.join(WEIGHTS_FILE),
        }
    }
}

/// Read config, weights and generation config of the checkpoint in `dir`.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<Checkpoint> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "checkpoint directory not found",
            ),
        ));
    }
    let config = ModelConfig::from_hf_file(&dir.join(CONFIG_FILE))?;
    let mut tensors = BTreeMap::new();
    let mut tensor_files = BTreeMap::new();
    for file in weight_files(dir)? {
        let expected = file.names;
        let found = read_safetensors(&file.path, device)?;
        if let Some(expected) = expected {
            for name in &expected {
                if !found.contains_key(name) {
                    return Err(Error::Tensor {
                        path: file.path.clone(),
                        tensor: name.clone(),
                        message: format!("listed in {WEIGHTS_INDEX_FILE} but not in this file"),
                    });
                }
            }
        }
        for (name, t) in found {
            if name.ends_with("rotary_emb.inv_freq") {
                continue; // a buffer old transformers saved; recomputed from rope_theta
            }
            if let Some(prev) = tensor_files.insert(name.clone(), file.path.clone()) {
                return Err(Error::Tensor {
                    path: file.path.clone(),
                    tensor: name,
                    message: format!("also stored in {}", prev.display()),
                });
            }
            tensors.insert(name, t);
        }
    }
    let gen_path = dir.join(GENERATION_FILE);
    let generation = if gen_path.exists() {
        GenerationConfig::from_file(&gen_path)?
    } else {
        GenerationConfig::default()
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        config,
        tensors,
        tensor_files,
        generation,
    })
}

/// Load the checkpoint in `dir` as a [`Model`]; `trainable` makes every weight a `Var`.
pub fn load_model(dir: &Path, device: &Device, trainable: bool) -> Result<Model> {
    load_checkpoint(dir, device)?.into_model(trainable)
}

struct WeightFile {
    path: PathBuf,
    /// Tensor names the index assigns to this file (None for a single-file checkpoint).
    names: Option<Vec<String>>,
}

/// The single weights file, or the shards of the index with the tensors each must hold.
fn weight_files(dir: &Path) -> Result<Vec<WeightFile>> {
    let index_path = dir.join(WEIGHTS_INDEX_FILE);
    if !index_path.exists() {
        let path = dir.join(WEIGHTS_FILE);
        if !path.exists() {
            return Err(Error::io(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no weights: neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE} exists"),
                ),
            ));
        }
        return Ok(vec![WeightFile { path, names: None }]);
    }
    let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: index_path.clone(),
        source,
    })?;
    let f = Fields::new(&value, &index_path)?;
    let map = f
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| f.err("weight_map", "missing or not an object"))?;
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| f.err(&format!("weight_map.{tensor}"), "expected a file name"))?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(f.err(
                &format!("weight_map.{tensor}"),
                format!("`{file}` is not a file name in the checkpoint directory"),
            ));
        }
        by_file
            .entry(file.to_string())
            .or_default()
            .push(tensor.clone());
    }
    by_file
        .into_iter()
        .map(|(file, names)| {
            let path = dir.join(&file);
            if !path.exists() {
                return Err(Error::Tensor {
                    path: index_path.clone(),
                    tensor: names[0].clone(),
                    message: format!("its shard {file} does not exist"),
                });
            }
            Ok(WeightFile {
                path,
                names: Some(names),
            })
        })
        .collect()
}

/// Every tensor of one safetensors file, converted to f32 on `device`.
fn read_safetensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    use safetensors::Dtype;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::Tensor {
        path: path.into(),
        tensor: "<header>".into(),
        message: format!("not a valid safetensors file: {e}"),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::BF16 => DType::BF16,
            Dtype::F16 => DType::F16,
            other => {
                return Err(Error::Tensor {
                    path: path.into(),
                    tensor: name,
                    message: format!("dtype {other:?} is not supported (f32, bf16, f16 are)"),
                })
            }
        };
        let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| Error::Tensor {
                path: path.into(),
                tensor: name.clone(),
                message: e.to_string(),
            })?;
        out.insert(name, t);
    }
    Ok(out)
}
