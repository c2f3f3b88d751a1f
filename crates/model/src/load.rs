//! Read a Hugging Face checkpoint directory: `config.json`, the weights (`model.safetensors`, or
//! shards listed by `model.safetensors.index.json`) and `generation_config.json`.
//!
//! Weights stored as f32 or bf16 are kept as stored, f16 is widened to f32; the decoder decides
//! what each model keeps (see [`Checkpoint::into_model`]). Every error names the file and, where
//! there is one, the tensor or field. The tokenizer is read separately
//! by [`crate::tokenizer::Tokenizer::from_dir`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::decoder::weight_shapes;
use crate::hf_json::{read_json, token_ids};
use crate::{Error, Model, ModelConfig, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
pub const GENERATION_FILE: &str = "generation_config.json";

/// Sampling defaults a checkpoint ships in `generation_config.json`, with that file's field
/// names: serde reads and writes the file (unset fields left out, as transformers writes it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// `eos_token_id` in the file: one id or a list.
    #[serde(
        rename = "eos_token_id",
        with = "token_ids",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub eos_token_ids: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub do_sample: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
}

impl GenerationConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        read_json(path)
    }
}

/// `model.safetensors.index.json`: which shard holds each tensor.
#[derive(Deserialize)]
struct WeightsIndex {
    weight_map: BTreeMap<String, String>,
}

/// A checkpoint as read from disk, before it becomes a [`Model`].
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: ModelConfig,
    /// Every weight by HF name, f32 or bf16 as stored (f16 widened to f32). Rotary `inv_freq`
    /// buffers are dropped.
    pub tensors: BTreeMap<String, Tensor>,
    /// The file each tensor came from, for error messages.
    pub tensor_files: BTreeMap<String, PathBuf>,
    /// From `generation_config.json`; default when the file is absent.
    pub generation: GenerationConfig,
}

impl Checkpoint {
    /// Build the decoder, checking that the weights are exactly the architecture's: a missing,
    /// misshapen or unexpected tensor is an error naming its file.
    ///
    /// A `trainable` model holds f32 weights (the optimizer's masters). An inference-only one
    /// keeps a bf16 checkpoint's matrices and embedding in bf16 (the kernels widen them exactly
    /// as they read them: the same numbers for half the memory) and the small vectors (norms,
    /// biases) in f32.
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
    let index: WeightsIndex = read_json(&index_path)?;
    let bad_name = |tensor: &str, message: String| Error::Config {
        path: index_path.clone(),
        field: format!("weight_map.{tensor}"),
        message,
    };
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tensor, file) in index.weight_map {
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(bad_name(
                &tensor,
                format!("`{file}` is not a file name in the checkpoint directory"),
            ));
        }
        by_file.entry(file).or_default().push(tensor);
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

/// One tensor's entry in a safetensors header.
#[derive(Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// Every tensor of one safetensors file on `device`: f32 and bf16 as stored, f16 widened to f32.
///
/// Tensors are read one at a time from the file (never the whole file into memory at once), so
/// loading peaks at the model's size plus its largest tensor.
fn read_safetensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    use std::io::{Read, Seek, SeekFrom};
    let bad = |tensor: &str, message: String| Error::Tensor {
        path: path.into(),
        tensor: tensor.into(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| bad("<header>", format!("not a valid safetensors file: {e}")))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 << 20 || 8 + header_len > file_len {
        return Err(bad(
            "<header>",
            format!("not a valid safetensors file: header length {header_len} in a file of {file_len} bytes"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad("<header>", format!("not a valid safetensors file: {e}")))?;
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| bad("<header>", format!("not a valid safetensors file: {e}")))?;
    let data_start = 8 + header_len;
    let mut by_offset = Vec::new();
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let entry: TensorEntry = serde_json::from_value(value)
            .map_err(|e| bad(&name, format!("bad header entry: {e}")))?;
        by_offset.push((name, entry));
    }
    by_offset.sort_by_key(|(_, e)| e.data_offsets.0);
    let mut out = BTreeMap::new();
    for (name, entry) in by_offset {
        let (dtype, size) = match entry.dtype.as_str() {
            "F32" => (DType::F32, 4),
            "BF16" => (DType::BF16, 2),
            "F16" => (DType::F16, 2),
            other => {
                return Err(bad(
                    &name,
                    format!("dtype {other} is not supported (F32, BF16, F16 are)"),
                ))
            }
        };
        let (begin, end) = entry.data_offsets;
        let elems = entry
            .shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d));
        let fits = data_start + end as u64 <= file_len;
        if begin > end || elems.and_then(|n| n.checked_mul(size)) != Some(end - begin) || !fits {
            return Err(bad(
                &name,
                format!(
                    "not a valid safetensors file: data offsets {begin}..{end} do not hold a \
                     {:?} {} tensor inside the file's {file_len} bytes (truncated?)",
                    entry.shape, entry.dtype
                ),
            ));
        }
        let mut bytes = vec![0u8; end - begin];
        file.seek(SeekFrom::Start(data_start + begin as u64))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| Error::io(path, e))?;
        let t = Tensor::from_raw_buffer(&bytes, dtype, &entry.shape, device)
            .and_then(|t| match dtype {
                DType::F16 => t.to_dtype(DType::F32),
                _ => Ok(t),
            })
            .map_err(|e| bad(&name, e.to_string()))?;
        out.insert(name, t);
    }
    Ok(out)
}
