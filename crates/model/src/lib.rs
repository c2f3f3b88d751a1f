//! aha-model: a Hugging Face causal language model in aha's own code.
//!
//! A checkpoint directory (`config.json`, `model.safetensors` or shards, `tokenizer.json`) is read
//! by [`load`] into a [`ModelConfig`] and weights, which [`Model`] turns into a decoder with two
//! forwards: [`Model::forward`] over a whole padded batch (training and scoring, with gradients)
//! and [`Model::forward_cached`] that appends to an explicit [`KvCache`] (decoding). [`ops`] holds
//! the custom ops that carry a backward, which candle's fused ops lack. [`save`] writes the model
//! back in the HF layout; [`init`] makes random checkpoints.
//!
//! Shapes use one legend: `N` sequences, `T` tokens, `V` vocabulary, `D` hidden size, `H`/`K`
//! query and key-value heads, `E` head dim.

pub mod char_tokenizer;
mod chat_template;
pub mod config;
pub mod decoder;
pub mod device;
pub mod error;
pub mod hf_config;
mod hf_json;
pub mod init;
pub mod kv_cache;
pub mod load;
pub mod matmul;
pub mod ops;
pub mod precision;
pub mod save;
pub mod tokenizer;

pub use config::{Architecture, ModelConfig};
pub use decoder::Model;
pub use device::{DeviceError, DeviceSpec};
pub use error::{Error, Result};
pub use kv_cache::KvCache;
pub use ops::backward;
pub use precision::Precision;
