//! The key/value cache for decoding, passed explicitly to [`crate::Model::forward_cached`].
//!
//! Buffers are allocated once for `capacity` slots and filled in place, so decoding allocates
//! nothing per step for the cache. Every row shares the slot count (prompts are left-padded);
//! a per-row additive mask hides padding slots. Rows can be repeated (fork a prompt into G
//! completions) or dropped (finished completions stop costing compute) with [`KvCache::select_rows`].

use candle_core::{DType, Device, Result, Tensor};

use crate::ModelConfig;

/// Added to attention scores of hidden slots. Finite, so a row that sees no slot gets a uniform
/// distribution instead of NaN.
pub(crate) const MASKED: f32 = -1e30;

/// Not `Clone`: buffers are written in place, so a shallow copy would alias them.
#[derive(Debug)]
pub struct KvCache {
    /// Per layer: keys and values, (N, K, C, E).
    layers: Vec<(Tensor, Tensor)>,
    /// (N, C): 0 where a slot may be attended, [`MASKED`] where it holds padding.
    mask: Tensor,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// An empty f32 cache for `rows` sequences of at most `capacity` tokens each.
    pub fn new(cfg: &ModelConfig, rows: usize, capacity: usize, device: &Device) -> Result<Self> {
        Self::with_dtype(cfg, rows, capacity, device, DType::F32)
    }

    /// An empty cache holding keys and values in `dtype` (the model's compute dtype; see
    /// [`crate::Model::new_cache`]). The mask stays f32.
    pub fn with_dtype(
        cfg: &ModelConfig,
        rows: usize,
        capacity: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let shape = (rows, cfg.num_key_value_heads, capacity, cfg.head_dim);
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| {
                Ok((
                    Tensor::zeros(shape, dtype, device)?,
                    Tensor::zeros(shape, dtype, device)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mask = Tensor::full(MASKED, (rows, capacity), device)?;
        Ok(Self {
            layers,
            mask,
            len: 0,
            capacity,
        })
    }

    /// Bytes a cache of this size takes, to check a memory budget before allocating.
    pub fn bytes_needed(cfg: &ModelConfig, rows: usize, capacity: usize) -> usize {
        let kv = 2 * cfg.num_hidden_layers * rows * cfg.num_key_value_heads * capacity;
        4 * (kv * cfg.head_dim + rows * capacity)
    }

    /// Slots filled so far (the same for every row).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn rows(&self) -> usize {
        self.mask.dims()[0]
    }

    /// A cache holding rows `idx` of this one, in that order: repeat an index to fork a row,
    /// leave it out to drop the row.
    pub fn select_rows(&self, idx: &[u32]) -> Result<Self> {
        let idx_t = Tensor::new(idx, self.mask.device())?;
        let layers = self
            .layers
            .iter()
            .map(|(k, v)| Ok((k.index_select(&idx_t, 0)?, v.index_select(&idx_t, 0)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            mask: self.mask.index_select(&idx_t, 0)?,
            len: self.len,
            capacity: self.capacity,
        })
    }

    /// Reserve `s` new slots for the tokens about to be appended; `valid` (N, S) u8/u32/f32 is
    /// nonzero for real tokens, zero for padding.
    pub(crate) fn open_slots(&mut self, valid: &Tensor) -> Result<()> {
        let (n, s) = valid.dims2()?;
        if n != self.rows() {
            candle_core::bail!("kv cache has {} rows, got {n}", self.rows());
        }
        if self.len + s > self.capacity {
            candle_core::bail!(
                "kv cache full: {} + {s} tokens exceed its capacity of {}",
                self.len,
                self.capacity
            );
        }
        let valid = valid.to_dtype(DType::F32)?;
        // valid 1 → 0, valid 0 → MASKED
        let add = ((valid - 1.0)? * (-MASKED as f64))?.contiguous()?;
        self.mask = self.mask.contiguous()?;
        self.mask.slice_set(&add, 1, self.len)?;
        Ok(())
    }

    /// Write the new keys/values (N, K, S, E) of `layer` into the reserved slots and return the
    /// keys and values of every filled slot including them, (N, K, len + S, E).
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let s = k.dims()[2];
        let (kc, vc) = &mut self.layers[layer];
        kc.slice_set(&k.to_dtype(kc.dtype())?.contiguous()?, 2, self.len)?;
        vc.slice_set(&v.to_dtype(vc.dtype())?.contiguous()?, 2, self.len)?;
        Ok((
            kc.narrow(2, 0, self.len + s)?,
            vc.narrow(2, 0, self.len + s)?,
        ))
    }

    /// The additive mask over filled slots including `s` just opened, (N, len + S).
    pub(crate) fn mask(&self, s: usize) -> Result<Tensor> {
        self.mask.narrow(1, 0, self.len + s)
    }

    /// Mark the `s` opened slots as filled.
    pub(crate) fn commit(&mut self, s: usize) {
        self.len += s;
    }
}
