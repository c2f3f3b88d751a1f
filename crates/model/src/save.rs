//! Write a model back as a Hugging Face checkpoint that transformers (4 and 5) and vLLM load:
//! `config.json`, `model.safetensors` (tied embeddings stored once, as HF does), the tokenizer
//! files and `generation_config.json`.
//!
//! Saving is atomic: everything is written and fsynced in a sibling temporary directory, which
//! is then renamed into place; an existing checkpoint at the target is replaced only after the
//! new one is complete. Optimizer and trainer state are not this module's (aha-train adds them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

use crate::config::StoredDtype;
use crate::load::{GenerationConfig, CONFIG_FILE, GENERATION_FILE, WEIGHTS_FILE};
use crate::tokenizer::Tokenizer;
use crate::{Error, Model, Result};

/// Save `model` with `tokenizer` to `out_dir`, weights stored as `dtype`. `generation` defaults
/// to the config's bos/eos/pad ids.
pub fn save_checkpoint(
    model: &Model,
    tokenizer: &Tokenizer,
    generation: Option<&GenerationConfig>,
    out_dir: &Path,
    dtype: StoredDtype,
) -> Result<()> {
    let mut cfg = model.config().clone();
    cfg.stored_dtype = dtype;
    if tokenizer.vocab_size() > cfg.vocab_size {
        return Err(Error::Input(format!(
            "the tokenizer has {} tokens but the model's vocab_size is {}",
            tokenizer.vocab_size(),
            cfg.vocab_size
        )));
    }
    let generation = generation.cloned().unwrap_or_else(|| GenerationConfig {
        bos_token_id: cfg.bos_token_id,
        eos_token_ids: cfg.eos_token_ids.clone(),
        pad_token_id: cfg.pad_token_id,
        ..Default::default()
    });
    write_atomically(out_dir, |tmp| {
        write_json(&tmp.join(CONFIG_FILE), &cfg.to_hf_json())?;
        write_json(&tmp.join(GENERATION_FILE), &generation)?;
        write_safetensors(&tmp.join(WEIGHTS_FILE), model, dtype)?;
        tokenizer.save_to(tmp)
    })
}

/// Run `fill` on a fresh sibling temporary directory, fsync it, and rename it to `out_dir`.
/// `fill` may fail with the caller's own error type, which comes back as it is (its source
/// chain kept).
pub fn write_atomically<E: From<Error>>(
    out_dir: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let name = out_dir
        .file_name()
        .ok_or_else(|| Error::Input(format!("{}: not a directory name", out_dir.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let stamp = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = parent.join(format!(".{name}.tmp-{stamp}"));
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = fill(&tmp).and_then(|()| {
        sync_dir_contents(&tmp)
            .and_then(|()| replace_dir(&tmp, out_dir, &parent.join(format!(".{name}.old-{stamp}"))))
            .and_then(|()| sync_path(&parent))
            .map_err(E::from)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Move `tmp` to `out_dir`; an existing `out_dir` is moved aside first and deleted after.
fn replace_dir(tmp: &Path, out_dir: &Path, old: &Path) -> Result<()> {
    if out_dir.exists() {
        std::fs::rename(out_dir, old).map_err(|e| Error::io(out_dir, e))?;
        if let Err(e) = std::fs::rename(tmp, out_dir) {
            // Put the previous checkpoint back rather than leave nothing at the target.
            let _ = std::fs::rename(old, out_dir);
            return Err(Error::io(out_dir, e));
        }
        std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))
    } else {
        std::fs::rename(tmp, out_dir).map_err(|e| Error::io(out_dir, e))
    }
}

fn sync_dir_contents(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        sync_path(&path)?;
    }
    sync_path(dir)
}

fn sync_path(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.into(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// The model's weights (each once) as one safetensors file with `{"format": "pt"}` metadata,
/// which transformers requires.
fn write_safetensors(path: &Path, model: &Model, dtype: StoredDtype) -> Result<()> {
    let tensors = model.tensors();
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in &tensors {
        let bytes = tensor_bytes(t, dtype).map_err(|e| Error::Tensor {
            path: path.into(),
            tensor: name.clone(),
            message: e.to_string(),
        })?;
        buffers.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let st_dtype = match dtype {
        StoredDtype::F32 => safetensors::Dtype::F32,
        StoredDtype::Bf16 => safetensors::Dtype::BF16,
        StoredDtype::F16 => safetensors::Dtype::F16,
    };
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(st_dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Tensor {
                    path: path.into(),
                    tensor: name.clone(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Tensor {
        path: path.into(),
        tensor: "<all>".into(),
        message: e.to_string(),
    })?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Little-endian bytes of `t` converted to `dtype` (bf16/f16 round to nearest even).
fn tensor_bytes(t: &Tensor, dtype: StoredDtype) -> candle_core::Result<Vec<u8>> {
    let flat = t.to_dtype(DType::F32)?.flatten_all()?;
    Ok(match dtype {
        StoredDtype::F32 => flat
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        StoredDtype::Bf16 => flat
            .to_dtype(DType::BF16)?
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        StoredDtype::F16 => flat
            .to_dtype(DType::F16)?
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    })
}
