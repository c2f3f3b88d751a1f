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
    /// Every weight by HF name (the tied head once, as the embedding): what is saved.
    named: BTreeMap<String, Tensor>,
    /// Trainable parameters by HF name; empty for a detached (inference) copy.
    vars: BTreeMap<String, Var>,
    /// Activations' dtype; weights stay f32 in a trainable model (see [`crate::precision`]).
    precision: Precision,
}

/// HF names of every weight the architecture has, with shapes, in a stable order.
pub fn weight_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let mut names = Vec::new();
    // Listing hands out empty tensors and cannot fail.
    let _ = Weights::build(cfg, Origin::Listing(&mut names));
    names
}

/// Where [`Weights::build`] gets each weight it names.
enum Origin<'a> {
    /// Nowhere: record names and shapes and hand out empty tensors ([`weight_shapes`]).
    Listing(&'a mut Vec<(String, Vec<usize>)>),
    /// A checkpoint's tensors, checked for shape: f32 [`Var`]s when `trainable`, else as
    /// [`inference_weight`] keeps them.
    Checkpoint {
        tensors: &'a BTreeMap<String, Tensor>,
        trainable: bool,
        vars: &'a mut BTreeMap<String, Var>,
    },
    /// Another model's weights, detached and cast to `dtype` ([`Model::detached`]).
    Cast {
        weights: &'a BTreeMap<String, Tensor>,
        dtype: DType,
    },
}

/// Hands out weights by name from an [`Origin`] and remembers each under its name.
struct WeightSource<'a> {
    origin: Origin<'a>,
    named: BTreeMap<String, Tensor>,
}

impl WeightSource<'_> {
    fn take(
        &mut self,
        name: String,
        shape: Vec<usize>,
    ) -> std::result::Result<Tensor, crate::Error> {
        let t = self.origin.take(&name, shape)?;
        self.named.insert(name, t.clone());
        Ok(t)
    }
}

impl Origin<'_> {
    fn take(&mut self, name: &str, shape: Vec<usize>) -> std::result::Result<Tensor, crate::Error> {
        let tensor_err = |message: String| crate::Error::Tensor {
            path: "<weights>".into(),
            tensor: name.into(),
            message,
        };
        match self {
            Origin::Listing(names) => {
                names.push((name.to_string(), shape));
                Ok(Tensor::zeros(0, DType::F32, &Device::Cpu)?)
            }
            Origin::Checkpoint {
                tensors,
                trainable,
                vars,
            } => {
                let t = tensors
                    .get(name)
                    .ok_or_else(|| tensor_err("missing".into()))?;
                if t.dims() != shape.as_slice() {
                    return Err(tensor_err(format!(
                        "expected shape {shape:?}, found {:?}",
                        t.dims()
                    )));
                }
                if !*trainable {
                    return Ok(inference_weight(t)?.detach());
                }
                let var = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
                let t = var.as_tensor().clone();
                vars.insert(name.to_string(), var);
                Ok(t)
            }
            Origin::Cast { weights, dtype } => {
                let t = weights
                    .get(name)
                    .ok_or_else(|| tensor_err("missing".into()))?;
                // A bf16 matrix stays bf16 under f32 compute: the f32 kernels widen it as they
                // read it. A failed cast (out of device memory) keeps the weights as they are,
                // which cast again at use.
                if t.dtype() == DType::BF16 && *dtype == DType::F32 {
                    return Ok(t.detach());
                }
                Ok(t.detach().to_dtype(*dtype).unwrap_or_else(|_| t.detach()))
            }
        }
    }
}

/// A weight for an inference-only model: a bf16 matrix or embedding stays bf16 (the CPU kernels
/// of [`crate::matmul`] widen it exactly as they read it, and elsewhere it is cast at use);
/// vectors (norms, biases) and other dtypes become f32.
fn inference_weight(t: &Tensor) -> Result<Tensor> {
    match (t.dtype(), t.rank()) {
        (DType::BF16, 2) => Ok(t.clone()),
        _ => t.to_dtype(DType::F32),
    }
}

/// `Some(take())` when `present`.
fn optional<T, E>(
    present: bool,
    take: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<Option<T>, E> {
    present.then(take).transpose()
}

/// The decoder's weights, built from an [`Origin`]: the one place weights are named.
struct Weights {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    /// Every weight handed out, by HF name (the tied head once, as the embedding), for saving.
    named: BTreeMap<String, Tensor>,
}

impl Weights {
    fn build(cfg: &ModelConfig, origin: Origin) -> std::result::Result<Weights, crate::Error> {
        let (d, e, i, v) = (
            cfg.hidden_size,
            cfg.head_dim,
            cfg.intermediate_size,
            cfg.vocab_size,
        );
        let (h, kv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let mut src = WeightSource {
            origin,
            named: BTreeMap::new(),
        };
        let embed = src.take("model.embed_tokens.weight".into(), vec![v, d])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            // This order is the checkpoint listing's and the seeded initialiser's draw order
            // (`init::random_model`): changing it changes every random model.
            let mut w = |name: &str, shape: Vec<usize>| src.take(format!("{p}.{name}"), shape);
            let q = w("self_attn.q_proj.weight", vec![h * e, d])?;
            let k = w("self_attn.k_proj.weight", vec![kv * e, d])?;
            let v = w("self_attn.v_proj.weight", vec![kv * e, d])?;
            let o = w("self_attn.o_proj.weight", vec![d, h * e])?;
            let (qb, kb, vb) = match cfg.attention_bias {
                true => (
                    Some(w("self_attn.q_proj.bias", vec![h * e])?),
                    Some(w("self_attn.k_proj.bias", vec![kv * e])?),
                    Some(w("self_attn.v_proj.bias", vec![kv * e])?),
                ),
                false => (None, None, None),
            };
            let ob = optional(cfg.o_bias, || w("self_attn.o_proj.bias", vec![d]))?;
            let q_norm = optional(cfg.qk_norm, || w("self_attn.q_norm.weight", vec![e]))?;
            let k_norm = optional(cfg.qk_norm, || w("self_attn.k_norm.weight", vec![e]))?;
            let gate = w("mlp.gate_proj.weight", vec![i, d])?;
            let up = w("mlp.up_proj.weight", vec![i, d])?;
            let down = w("mlp.down_proj.weight", vec![d, i])?;
            let (gb, ub, db) = match cfg.mlp_bias {
                true => (
                    Some(w("mlp.gate_proj.bias", vec![i])?),
                    Some(w("mlp.up_proj.bias", vec![i])?),
                    Some(w("mlp.down_proj.bias", vec![d])?),
                ),
                false => (None, None, None),
            };
            layers.push(Layer {
                q: Linear { w: q, b: qb },
                k: Linear { w: k, b: kb },
                v: Linear { w: v, b: vb },
                o: Linear { w: o, b: ob },
                q_norm,
                k_norm,
                gate: Linear { w: gate, b: gb },
                up: Linear { w: up, b: ub },
                down: Linear { w: down, b: db },
                input_norm: w("input_layernorm.weight", vec![d])?,
                post_attn_norm: w("post_attention_layernorm.weight", vec![d])?,
            });
        }
        let norm = src.take("model.norm.weight".into(), vec![d])?;
        let lm_head = match cfg.tie_word_embeddings {
            true => embed.clone(),
            false => src.take("lm_head.weight".into(), vec![v, d])?,
        };
        Ok(Weights {
            embed,
            layers,
            norm,
            lm_head,
            named: src.named,
        })
    }
}

impl Model {
    /// Build the model from f32 or bf16 tensors named as in HF checkpoints. Every expected tensor
    /// must be present with the right shape; `trainable` wraps each in an f32 [`Var`] for the
    /// optimizer, otherwise bf16 matrices stay bf16 (see [`inference_weight`]).
    /// Errors name the missing or misshapen tensor (the caller adds the file).
    pub fn from_tensors(
        cfg: &ModelConfig,
        tensors: &BTreeMap<String, Tensor>,
        trainable: bool,
    ) -> std::result::Result<Self, crate::Error> {
        let mut vars = BTreeMap::new();
        let origin = Origin::Checkpoint {
            tensors,
            trainable,
            vars: &mut vars,
        };
        let weights = Weights::build(cfg, origin)?;
        let (cos, sin) = rope_tables(cfg, weights.embed.device())?;
        Ok(Self::assemble(cfg, weights, cos, sin, vars, Precision::F32))
    }

    fn assemble(
        cfg: &ModelConfig,
        w: Weights,
        cos: Tensor,
        sin: Tensor,
        vars: BTreeMap<String, Var>,
        precision: Precision,
    ) -> Self {
        Self {
            cfg: cfg.clone(),
            embed: w.embed,
            layers: w.layers,
            norm: w.norm,
            lm_head: w.lm_head,
            named: w.named,
            cos,
            sin,
            vars,
            precision,
        }
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
        self.named
            .iter()
            .map(|(name, t)| (name.clone(), t.detach()))
            .collect()
    }

    /// A copy that builds no autodiff graph: what rollouts use. In f32 it shares the weights'
    /// storage (so it sees optimizer updates); in bf16 it holds a bf16 copy made now, so take a
    /// fresh one after each update.
    pub fn detached(&self) -> Self {
        let origin = Origin::Cast {
            weights: &self.named,
            dtype: self.precision.compute_dtype(),
        };
        match Weights::build(&self.cfg, origin) {
            Ok(w) => Self::assemble(
                &self.cfg,
                w,
                self.cos.clone(),
                self.sin.clone(),
                BTreeMap::new(),
                self.precision,
            ),
            // Cannot happen (the names are the ones this model was built with); the uncast
            // weights compute the same numbers.
            Err(_) => Self {
                vars: BTreeMap::new(),
                ..self.clone()
            },
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
            x = self.train_layer(layer, &x, &cos, &sin, &mask)?;
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
        let targets = ids.narrow(1, 1, t - 1)?;
        Ok(self.head_logprobs(&hidden, &targets, 1.0, false)?.0)
    }

    /// `log p(targets | hidden)` under `softmax(logits / temperature)`, with gradients, and the
    /// entropy of that distribution (no gradient) when `with_entropy`: hidden (N, T, D), targets
    /// (N, T) u32 → (N, T) each. The logits are never materialised whole ([`ops::head_logprobs`]).
    pub fn head_logprobs(
        &self,
        hidden: &Tensor,
        targets: &Tensor,
        temperature: f64,
        with_entropy: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (n, t, d) = hidden.dims3()?;
        check_dims("targets", targets, &[n, t])?;
        let (logp, entropy) = ops::head_logprobs(
            &hidden.reshape((n * t, d))?,
            &self.lm_head,
            &targets.flatten_all()?,
            temperature,
            with_entropy,
        )?;
        let entropy = entropy.map(|e| e.reshape((n, t))).transpose()?;
        Ok((logp.reshape((n, t))?, entropy))
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
        self.mlp(layer, &x, mode)
    }

    /// One decoder layer of a whole-sequence forward with gradients. Without Qwen3's q/k norms,
    /// the q, k and v projections run as one GEMM over `[Wq; Wk; Wv]` whose output
    /// [`ops::rope_attention`] takes as is; the layer computes the same function as
    /// [`Model::layer_forward`].
    fn train_layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let heads = ops::Heads {
            q: cfg.num_attention_heads,
            kv: cfg.num_key_value_heads,
            dim: cfg.head_dim,
        };
        if let Some(weights) = fused_layer_weights(layer, x)? {
            let eps = cfg.rms_norm_eps;
            return ops::fused::decoder_layer(x, &weights, cos, sin, mask, heads, eps);
        }
        let packable = layer.q_norm.is_none() && layer.k_norm.is_none();
        let qkv = match packable {
            true => packed(&[&layer.q, &layer.k, &layer.v])?,
            false => None,
        };
        let Some((w, b)) = qkv else {
            return self.layer_forward(layer, x, cos, sin, Mode::Train, |k, v| {
                Ok((k.clone(), v.clone(), mask.clone()))
            });
        };
        let (n, s, d) = x.dims3()?;
        let xn = ops::rms_norm(x, &layer.input_norm, cfg.rms_norm_eps)?.reshape((n * s, d))?;
        let qkv = ops::linear(&xn, &w, b.as_ref())?.reshape((n, s, ()))?;
        let scale = 1.0 / (heads.dim as f64).sqrt();
        let attn = ops::rope_attention(&qkv, cos, sin, mask, heads, scale)?;
        let attn = attn.reshape((n * s, heads.q * heads.dim))?;
        let x = (x + layer.o.apply(&attn, Mode::Train)?.reshape((n, s, d))?)?;
        self.mlp(layer, &x, Mode::Train)
    }

    /// The MLP half of a layer, residual included. Training runs gate and up as one GEMM over
    /// `[W_gate; W_up]` when neither has a bias.
    fn mlp(&self, layer: &Layer, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (n, s, d) = x.dims3()?;
        let xn = norm(x, &layer.post_attn_norm, self.cfg.rms_norm_eps, mode)?;
        let xn = xn.reshape((n * s, d))?;
        let gate_up = match mode {
            Mode::Train => packed(&[&layer.gate, &layer.up])?.filter(|(_, b)| b.is_none()),
            Mode::Infer => None,
        };
        let mlp = match gate_up {
            Some((w, _)) => ops::swiglu_packed(&ops::linear(&xn, &w, None)?)?,
            None => ops::swiglu(&layer.gate.apply(&xn, mode)?, &layer.up.apply(&xn, mode)?)?,
        };
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

/// A layer's weights for [`ops::fused::decoder_layer`], when its kernels apply: f32 on the CPU
/// (and `AHA_OPS` not forcing the generic ops), no q/k norms, no MLP biases, q/k/v biases all or
/// none.
fn fused_layer_weights<'a>(layer: &'a Layer, x: &Tensor) -> Result<Option<ops::LayerWeights<'a>>> {
    if ops::path_for(x.device(), x.dtype())? != ops::Path::Fused
        || layer.q_norm.is_some()
        || layer.k_norm.is_some()
        || [&layer.gate, &layer.up, &layer.down]
            .iter()
            .any(|l| l.b.is_some())
    {
        return Ok(None);
    }
    let qkv_bias = match (&layer.q.b, &layer.k.b, &layer.v.b) {
        (Some(q), Some(k), Some(v)) => Some([q, k, v]),
        (None, None, None) => None,
        _ => return Ok(None),
    };
    let weights = ops::LayerWeights {
        input_norm: &layer.input_norm,
        q: &layer.q.w,
        k: &layer.k.w,
        v: &layer.v.w,
        qkv_bias,
        o: &layer.o.w,
        o_bias: layer.o.b.as_ref(),
        post_norm: &layer.post_attn_norm,
        gate: &layer.gate.w,
        up: &layer.up.w,
        down: &layer.down.w,
    };
    let all_f32 = [
        weights.q,
        weights.k,
        weights.v,
        weights.o,
        weights.gate,
        weights.up,
        weights.down,
    ]
    .iter()
    .all(|w| w.dtype() == DType::F32);
    Ok(all_f32.then_some(weights))
}

/// The weights of linear layers that read the same input, stacked along their outputs so one
/// GEMM computes all of them (the stacking is an autodiff node: each weight gets its slice of the
/// gradient). `None` when some but not all have a bias.
fn packed(layers: &[&Linear]) -> Result<Option<(Tensor, Option<Tensor>)>> {
    let w = Tensor::cat(&layers.iter().map(|l| &l.w).collect::<Vec<_>>(), 0)?;
    let biases: Vec<&Tensor> = layers.iter().filter_map(|l| l.b.as_ref()).collect();
    Ok(match biases.len() {
        0 => Some((w, None)),
        n if n == layers.len() => Some((w, Some(Tensor::cat(&biases, 0)?))),
        _ => None,
    })
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
