//! The decoder: Qwen2 / Qwen3 / Llama with HF weight names, in aha's own code.
//!
//! Two forwards share the layer code. [`Model::forward`] runs a whole padded batch and keeps the
//! autodiff graph, using [`crate::ops`] (which have a backward) — training and scoring.
//! [`Model::forward_cached`] appends tokens to an explicit [`KvCache`] and uses candle's fused
//! kernels where no gradient is needed — decoding. Both compute the same numbers.
//!
//! Legend: `N` sequences, `T` tokens (`S` new tokens, `L` cached + new), `D` hidden,
//! `H`/`K` query/key-value heads, `G = H/K`, `E` head dim, `V` vocabulary.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::kv_cache::MASKED;
use crate::{ops, KvCache, ModelConfig, Precision};

/// A linear layer `y = x Wᵀ + b` over 2-D input (M, in).
#[derive(Debug, Clone)]
struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// Decoding's few rows go to [`ops::decode_linear`] (on the CPU a kernel that skips the
    /// GEMM's weight packing).
    fn apply(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match mode {
            Mode::Train => ops::linear(x, &self.w, self.b.as_ref()),
            Mode::Infer => ops::decode_linear(x, &self.w, self.b.as_ref()),
        }
    }
}

#[derive(Debug, Clone)]
struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    gate: Linear,
    up: Linear,
    down: Linear,
    input_norm: Tensor,
    post_attn_norm: Tensor,
}

/// Whether a forward keeps gradients (training ops) or may use fused inference kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Train,
    Infer,
}

#[derive(Debug, Clone)]
pub struct Model {
    cfg: ModelConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    /// (max_positions, E/2)
    cos: Tensor,
    sin: Tensor,
    /// Trainable parameters by HF name; empty for a detached (inference) copy.
    vars: BTreeMap<String, Var>,
    /// Activations' dtype; weights stay f32 in a trainable model (see [`crate::precision`]).
    precision: Precision,
}

/// HF names of every weight the architecture has, with shapes, in a stable order.
pub fn weight_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, e, i, v) = (
        cfg.hidden_size,
        cfg.head_dim,
        cfg.intermediate_size,
        cfg.vocab_size,
    );
    let (h, k) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, d])];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let mut add = |name: &str, shape: Vec<usize>| out.push((format!("{p}.{name}"), shape));
        add("self_attn.q_proj.weight", vec![h * e, d]);
        add("self_attn.k_proj.weight", vec![k * e, d]);
        add("self_attn.v_proj.weight", vec![k * e, d]);
        add("self_attn.o_proj.weight", vec![d, h * e]);
        if cfg.attention_bias {
            add("self_attn.q_proj.bias", vec![h * e]);
            add("self_attn.k_proj.bias", vec![k * e]);
            add("self_attn.v_proj.bias", vec![k * e]);
        }
        if cfg.o_bias {
            add("self_attn.o_proj.bias", vec![d]);
        }
        if cfg.qk_norm {
            add("self_attn.q_norm.weight", vec![e]);
            add("self_attn.k_norm.weight", vec![e]);
        }
        add("mlp.gate_proj.weight", vec![i, d]);
        add("mlp.up_proj.weight", vec![i, d]);
        add("mlp.down_proj.weight", vec![d, i]);
        if cfg.mlp_bias {
            add("mlp.gate_proj.bias", vec![i]);
            add("mlp.up_proj.bias", vec![i]);
            add("mlp.down_proj.bias", vec![d]);
        }
        add("input_layernorm.weight", vec![d]);
        add("post_attention_layernorm.weight", vec![d]);
    }
    out.push(("model.norm.weight".to_string(), vec![d]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![v, d]));
    }
    out
}

impl Model {
    /// Build the model from f32 tensors named as in HF checkpoints. Every expected tensor must be
    /// present with the right shape; `trainable` wraps each in a [`Var`] for the optimizer.
    /// Errors name the missing or misshapen tensor (the caller adds the file).
    pub fn from_tensors(
        cfg: &ModelConfig,
        tensors: &BTreeMap<String, Tensor>,
        trainable: bool,
    ) -> std::result::Result<Self, crate::Error> {
        let mut vars = BTreeMap::new();
        let mut take = BTreeMap::new();
        for (name, shape) in weight_shapes(cfg) {
            let t = tensors.get(&name).ok_or_else(|| crate::Error::Tensor {
                path: "<weights>".into(),
                tensor: name.clone(),
                message: "missing".into(),
            })?;
            if t.dims() != shape.as_slice() {
                return Err(crate::Error::Tensor {
                    path: "<weights>".into(),
                    tensor: name,
                    message: format!("expected shape {shape:?}, found {:?}", t.dims()),
                });
            }
            let t = t.to_dtype(DType::F32)?;
            let t = if trainable {
                let var = Var::from_tensor(&t)?;
                let t = var.as_tensor().clone();
                vars.insert(name.clone(), var);
                t
            } else {
                t.detach()
            };
            take.insert(name, t);
        }
        let mut get =
            |name: &str| -> Tensor { take.remove(name).expect("listed by weight_shapes") };
        let lin = |get: &mut dyn FnMut(&str) -> Tensor, p: &str, bias: bool| Linear {
            w: get(&format!("{p}.weight")),
            b: bias.then(|| get(&format!("{p}.bias"))),
        };
        let embed = get("model.embed_tokens.weight");
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            layers.push(Layer {
                q: lin(
                    &mut get,
                    &format!("{p}.self_attn.q_proj"),
                    cfg.attention_bias,
                ),
                k: lin(
                    &mut get,
                    &format!("{p}.self_attn.k_proj"),
                    cfg.attention_bias,
                ),
                v: lin(
                    &mut get,
                    &format!("{p}.self_attn.v_proj"),
                    cfg.attention_bias,
                ),
                o: lin(&mut get, &format!("{p}.self_attn.o_proj"), cfg.o_bias),
                q_norm: cfg
                    .qk_norm
                    .then(|| get(&format!("{p}.self_attn.q_norm.weight"))),
                k_norm: cfg
                    .qk_norm
                    .then(|| get(&format!("{p}.self_attn.k_norm.weight"))),
                gate: lin(&mut get, &format!("{p}.mlp.gate_proj"), cfg.mlp_bias),
                up: lin(&mut get, &format!("{p}.mlp.up_proj"), cfg.mlp_bias),
                down: lin(&mut get, &format!("{p}.mlp.down_proj"), cfg.mlp_bias),
                input_norm: get(&format!("{p}.input_layernorm.weight")),
                post_attn_norm: get(&format!("{p}.post_attention_layernorm.weight")),
            });
        }
        let norm = get("model.norm.weight");
        let lm_head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            get("lm_head.weight")
        };
        let (cos, sin) = rope_tables(cfg, embed.device())?;
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
            cos,
            sin,
            vars,
            precision: Precision::F32,
        })
    }

    /// The same model computing in `precision` (weights are cast at use; the trainable copies
    /// stay f32).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// A key/value cache in this model's compute dtype, for [`Model::forward_cached`].
    pub fn new_cache(&self, rows: usize, capacity: usize) -> Result<KvCache> {
        KvCache::with_dtype(
            &self.cfg,
            rows,
            capacity,
            self.device(),
            self.precision.compute_dtype(),
        )
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// Trainable parameters by HF name (empty for a detached copy). Tied embeddings appear once.
    pub fn vars(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    /// Current weights by HF name, for saving.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        out.insert("model.embed_tokens.weight".into(), self.embed.detach());
        for (l, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{l}");
            let mut put = |name: &str, t: &Tensor| {
                out.insert(format!("{p}.{name}"), t.detach());
            };
            for (name, lin) in [
                ("self_attn.q_proj", &layer.q),
                ("self_attn.k_proj", &layer.k),
                ("self_attn.v_proj", &layer.v),
                ("self_attn.o_proj", &layer.o),
                ("mlp.gate_proj", &layer.gate),
                ("mlp.up_proj", &layer.up),
                ("mlp.down_proj", &layer.down),
            ] {
                put(&format!("{name}.weight"), &lin.w);
                if let Some(b) = &lin.b {
                    put(&format!("{name}.bias"), b);
                }
            }
            if let Some(t) = &layer.q_norm {
                put("self_attn.q_norm.weight", t);
            }
            if let Some(t) = &layer.k_norm {
                put("self_attn.k_norm.weight", t);
            }
            put("input_layernorm.weight", &layer.input_norm);
            put("post_attention_layernorm.weight", &layer.post_attn_norm);
        }
        out.insert("model.norm.weight".into(), self.norm.detach());
        if !self.cfg.tie_word_embeddings {
            out.insert("lm_head.weight".into(), self.lm_head.detach());
        }
        out
    }

    /// A copy that builds no autodiff graph: what rollouts use. In f32 it shares the weights'
    /// storage (so it sees optimizer updates); in bf16 it holds a bf16 copy made now, so take a
    /// fresh one after each update.
    pub fn detached(&self) -> Self {
        let dtype = self.precision.compute_dtype();
        // A failed cast (out of device memory) keeps the f32 weights, which cast again at use.
        let d = |t: &Tensor| t.detach().to_dtype(dtype).unwrap_or_else(|_| t.detach());
        let dl = |l: &Linear| Linear {
            w: d(&l.w),
            b: l.b.as_ref().map(d),
        };
        Self {
            cfg: self.cfg.clone(),
            embed: d(&self.embed),
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    q: dl(&l.q),
                    k: dl(&l.k),
                    v: dl(&l.v),
                    o: dl(&l.o),
                    q_norm: l.q_norm.as_ref().map(d),
                    k_norm: l.k_norm.as_ref().map(d),
                    gate: dl(&l.gate),
                    up: dl(&l.up),
                    down: dl(&l.down),
                    input_norm: d(&l.input_norm),
                    post_attn_norm: d(&l.post_attn_norm),
                })
                .collect(),
            norm: d(&self.norm),
            lm_head: d(&self.lm_head),
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            vars: BTreeMap::new(),
            precision: self.precision,
        }
    }

    /// A deep copy with its own storage and no gradients: a frozen reference model.
    pub fn frozen_copy(&self) -> Result<Self> {
        let tensors = self
            .tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, t.copy()?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Self::from_tensors(&self.cfg, &tensors, false)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
            .with_precision(self.precision))
    }

    /// Final hidden states for a batch, with gradients.
    ///
    /// ids: (N, T) u32. positions: (N, T) u32, or `None` for 0..T in every row.
    /// attention_mask: (N, T), nonzero for real tokens, or `None` when every row is real or
    /// right-padded (causality already keeps real tokens from seeing the padding after them).
    /// Returns (N, T, D).
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (n, t) = self.check_ids(ids)?;
        let positions = match positions {
            Some(p) => {
                check_dims("positions", p, &[n, t])?;
                p.clone()
            }
            None => Tensor::arange(0u32, t as u32, self.device())?
                .unsqueeze(0)?
                .broadcast_as((n, t))?
                .contiguous()?,
        };
        // (T, T) causal part plus an optional (N, T) key-padding part.
        let causal = causal_mask(t, self.device())?;
        let mask = match attention_mask {
            Some(m) => {
                check_dims("attention_mask", m, &[n, t])?;
                let pad = ((m.to_dtype(DType::F32)? - 1.0)? * (-MASKED as f64))?;
                causal
                    .reshape((1, 1, 1, t, t))?
                    .broadcast_add(&pad.reshape((n, 1, 1, 1, t))?)?
            }
            None => causal.reshape((1, 1, 1, t, t))?,
        };
        let (cos, sin) = self.rope_at(&positions)?;
        let mut x = self.embed_tokens(ids)?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &cos, &sin, Mode::Train, |k, v| {
                Ok((k.clone(), v.clone(), mask.clone()))
            })?;
        }
        ops::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// Token embeddings in the compute dtype: ids (N, T) → (N, T, D).
    fn embed_tokens(&self, ids: &Tensor) -> Result<Tensor> {
        let (n, t) = ids.dims2()?;
        self.embed
            .embedding(&ids.flatten_all()?)?
            .reshape((n, t, ()))?
            .to_dtype(self.precision.compute_dtype())
    }

    /// Logits for hidden states, in f32 whatever the compute dtype (samplers and losses take
    /// them): (N, T, D) → (N, T, V).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let (n, t, d) = hidden.dims3()?;
        ops::linear(&hidden.reshape((n * t, d))?, &self.lm_head, None)?
            .reshape((n, t, self.cfg.vocab_size))?
            .to_dtype(DType::F32)
    }

    /// `log p(ids[i+1] | ids[..=i])` for every row, with gradients: (N, T) → (N, T-1).
    /// Rows are taken as right-padded; entries past a row's end are meaningless.
    pub fn token_logprobs(&self, ids: &Tensor) -> Result<Tensor> {
        let (_n, t) = self.check_ids(ids)?;
        if t < 2 {
            candle_core::bail!("token_logprobs needs at least 2 tokens per row, got {t}");
        }
        let hidden = self.forward(ids, None, None)?.narrow(1, 0, t - 1)?;
        let targets = ids.narrow(1, 1, t - 1)?.contiguous()?;
        ops::token_logprobs(&self.logits(&hidden)?, &targets)
    }

    /// Append `ids` (N, S) at `positions` (N, S) to `cache` and return the logits of the last
    /// new token of each row, (N, V). `valid` (N, S) is zero for padding tokens, which no later
    /// token attends to. Builds no autodiff graph when the model is [`Model::detached`].
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        valid: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (n, s) = self.check_ids(ids)?;
        check_dims("positions", positions, &[n, s])?;
        check_dims("valid", valid, &[n, s])?;
        cache.open_slots(valid)?;
        let past = cache.len();
        // (N, 1, 1, S, L): padding slots of every row, plus causality among the S new tokens.
        let pad = cache.mask(s)?.reshape((n, 1, 1, 1, past + s))?;
        let mask = if s > 1 {
            let causal = Tensor::cat(
                &[
                    Tensor::zeros((s, past), DType::F32, self.device())?,
                    causal_mask(s, self.device())?,
                ],
                1,
            )?;
            pad.broadcast_add(&causal.reshape((1, 1, 1, s, past + s))?)?
        } else {
            pad
        };
        let (cos, sin) = self.rope_at(positions)?;
        let mut x = self.embed_tokens(ids)?;
        for (l, layer) in self.layers.iter().enumerate() {
            x = self.layer_forward(layer, &x, &cos, &sin, Mode::Infer, |k, v| {
                let (k, v) = cache.append(l, k, v)?;
                Ok((k, v, mask.clone()))
            })?;
        }
        cache.commit(s);
        let last = x.narrow(1, s - 1, 1)?;
        let last = ops::decode_rms_norm(&last, &self.norm, self.cfg.rms_norm_eps)?;
        ops::decode_linear(&last.squeeze(1)?, &self.lm_head, None)?.to_dtype(DType::F32)
    }

    /// One decoder layer. `attend_to` turns this step's keys/values (N, K, S, E) into the keys
    /// and values to attend over (N, K, L, E) plus the additive mask (N or 1, 1, 1, S, L).
    fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mode: Mode,
        mut attend_to: impl FnMut(&Tensor, &Tensor) -> Result<(Tensor, Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (n, s, d) = x.dims3()?;
        let (h, kh, e) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let eps = cfg.rms_norm_eps;

        let xn = norm(x, &layer.input_norm, eps, mode)?.reshape((n * s, d))?;
        let q = layer.q.apply(&xn, mode)?.reshape((n, s, h, e))?;
        let k = layer.k.apply(&xn, mode)?.reshape((n, s, kh, e))?;
        let v = layer.v.apply(&xn, mode)?.reshape((n, s, kh, e))?;
        let q = match &layer.q_norm {
            Some(w) => norm(&q, w, eps, mode)?,
            None => q,
        };
        let k = match &layer.k_norm {
            Some(w) => norm(&k, w, eps, mode)?,
            None => k,
        };
        let q = ops::rope(&q, cos, sin)?; // (N, S, H, E)
        let k = ops::rope(&k, cos, sin)?.transpose(1, 2)?.contiguous()?; // (N, K, S, E)
        let v = v.transpose(1, 2)?.contiguous()?; // (N, K, S, E)
        let (k, v, mask) = attend_to(&k, &v)?; // (N, K, L, E), mask (·, 1, 1, S, L)
        let scale = 1.0 / (e as f64).sqrt();
        let attn = ops::attention(&q, &k, &v, &mask, scale)?.reshape((n * s, h * e))?;
        let x = (x + layer.o.apply(&attn, mode)?.reshape((n, s, d))?)?;

        let xn = norm(&x, &layer.post_attn_norm, eps, mode)?.reshape((n * s, d))?;
        let mlp = ops::swiglu(&layer.gate.apply(&xn, mode)?, &layer.up.apply(&xn, mode)?)?;
        x + layer.down.apply(&mlp, mode)?.reshape((n, s, d))?
    }

    /// cos/sin (N, T, E/2) at each token's position.
    fn rope_at(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (n, t) = positions.dims2()?;
        let max = self.cos.dims()[0];
        let flat = positions.flatten_all()?;
        let top = flat.max(0)?.to_scalar::<u32>()? as usize;
        if top >= max {
            candle_core::bail!(
                "position {top} is beyond max_position_embeddings ({max}): sequence too long"
            );
        }
        let cos = self.cos.index_select(&flat, 0)?.reshape((n, t, ()))?;
        let sin = self.sin.index_select(&flat, 0)?.reshape((n, t, ()))?;
        Ok((cos, sin))
    }

    fn check_ids(&self, ids: &Tensor) -> Result<(usize, usize)> {
        let (n, t) = ids.dims2()?;
        if ids.dtype() != DType::U32 {
            candle_core::bail!("token ids must be u32, got {:?}", ids.dtype());
        }
        if n == 0 || t == 0 {
            candle_core::bail!("empty batch of token ids ({n}, {t})");
        }
        let top = ids.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
        if top >= self.cfg.vocab_size {
            candle_core::bail!(
                "token id {top} is out of range for vocab_size {}",
                self.cfg.vocab_size
            );
        }
        Ok((n, t))
    }
}

fn norm(x: &Tensor, w: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Train => ops::rms_norm(x, w, eps),
        Mode::Infer => ops::decode_rms_norm(x, w, eps),
    }
}

fn check_dims(what: &str, t: &Tensor, dims: &[usize]) -> Result<()> {
    if t.dims() != dims {
        candle_core::bail!("{what}: expected shape {dims:?}, got {:?}", t.dims());
    }
    Ok(())
}

/// (T, T): 0 on and below the diagonal, masked above.
fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { MASKED }))
        .collect();
    Tensor::from_vec(data, (t, t), device)
}

/// cos and sin of `position · θ^(-2i/E)`, (max_positions, E/2). Computed in f64, stored in f32.
fn rope_tables(cfg: &ModelConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let max = cfg.max_position_embeddings;
    let inv: Vec<f64> = (0..half)
        .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(max * half);
    let mut sin = Vec::with_capacity(max * half);
    for p in 0..max {
        for f in &inv {
            // HF computes the angle in f32; match it so long contexts agree.
            let angle = (p as f32) * (*f as f32);
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (max, half), device)?,
        Tensor::from_vec(sin, (max, half), device)?,
    ))
}
