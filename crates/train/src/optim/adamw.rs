//! AdamW (Loshchilov & Hutter, arXiv:1711.05101) over a model's [`Var`]s, with its state saved to
//! and loaded from safetensors so a resumed run continues bit for bit.
//!
//! Same update as `torch.optim.AdamW`: decoupled weight decay `θ ← θ(1 − lr·λ)`, then
//! `θ ← θ − lr · m̂ / (√v̂ + ε)` with bias-corrected moments. Weight decay applies to matrices
//! only; biases and norm weights (rank 1) are not decayed, as in HF's Trainer. candle_nn's AdamW
//! keeps its moments private, hence this one. The learning rate is passed to each step (the
//! schedule lives in `schedule.rs`). On the CPU each parameter is updated in place by one fused,
//! multi-threaded pass (`fused.rs`); elsewhere by candle ops with the same arithmetic.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::fused;
use crate::{Error, Result};

/// Gradients by parameter name, as [`crate::optim::GradAccumulator`] produces them.
pub type Gradients = BTreeMap<String, Tensor>;

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn adam_eps() -> f64 {
    1e-8
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    #[serde(default = "beta1")]
    pub beta1: f64,
    #[serde(default = "beta2")]
    pub beta2: f64,
    #[serde(default = "adam_eps")]
    pub eps: f64,
    #[serde(default)]
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: beta1(),
            beta2: beta2(),
            eps: adam_eps(),
            weight_decay: 0.0,
        }
    }
}

/// A parameter's first and second moments, shaped like it.
enum Moments {
    /// f32 on the CPU: plain buffers the fused kernel updates in place ([`super::fused`]).
    Host { m: Vec<f32>, v: Vec<f32> },
    /// Any other device or dtype: candle tensors, updated with candle ops.
    Device { m: Tensor, v: Tensor },
}

struct Slot {
    name: String,
    var: Var,
    moments: Moments,
}

impl Slot {
    fn new(name: &str, var: &Var) -> Result<Self> {
        let t = var.as_tensor();
        let moments = if fused::applies(t) {
            let n = t.elem_count();
            Moments::Host {
                m: vec![0.0; n],
                v: vec![0.0; n],
            }
        } else {
            let zeros = t.zeros_like()?;
            Moments::Device {
                m: zeros.clone(),
                v: zeros,
            }
        };
        Ok(Self {
            name: name.to_string(),
            var: var.clone(),
            moments,
        })
    }

    /// The moments as tensors, for saving.
    fn moment_tensors(&self) -> Result<(Tensor, Tensor)> {
        Ok(match &self.moments {
            Moments::Host { m, v } => {
                let dims = self.var.dims();
                (
                    Tensor::from_slice(m, dims, &Device::Cpu)?,
                    Tensor::from_slice(v, dims, &Device::Cpu)?,
                )
            }
            Moments::Device { m, v } => (m.clone(), v.clone()),
        })
    }

    /// Replaces the moments with loaded ones (f32, the parameter's shape).
    fn set_moments(&mut self, m: Tensor, v: Tensor) -> Result<()> {
        self.moments = match &self.moments {
            Moments::Host { .. } => Moments::Host {
                m: m.flatten_all()?.to_vec1::<f32>()?,
                v: v.flatten_all()?.to_vec1::<f32>()?,
            },
            Moments::Device { .. } => {
                let device = self.var.device();
                Moments::Device {
                    m: m.to_device(device)?,
                    v: v.to_device(device)?,
                }
            }
        };
        Ok(())
    }
}

pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
    /// Updates taken so far (the `t` of the bias correction).
    steps: u64,
}

impl AdamW {
    pub fn new(vars: &BTreeMap<String, Var>, cfg: AdamWConfig) -> Result<Self> {
        let slots = vars
            .iter()
            .map(|(name, var)| Slot::new(name, var))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg,
            slots,
            steps: 0,
        })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update at learning rate `lr`. Every parameter must have a gradient: a missing one
    /// means it took no part in the loss, which is a bug upstream.
    pub fn step(&mut self, grads: &Gradients, lr: f64) -> Result<()> {
        self.step_scaled(grads, lr, 1.0)
    }

    /// One update with every gradient multiplied by `grad_scale` first: gradient-norm clipping
    /// folded into the update, so the scaled gradients are never materialised.
    pub fn step_scaled(&mut self, grads: &Gradients, lr: f64, grad_scale: f64) -> Result<()> {
        for slot in &self.slots {
            let g = grads.get(&slot.name).ok_or_else(|| {
                Error::Shape(format!("AdamW: no gradient for parameter `{}`", slot.name))
            })?;
            if g.dims() != slot.var.dims() {
                return Err(Error::Shape(format!(
                    "AdamW: gradient of `{}` has shape {:?}, the parameter {:?}",
                    slot.name,
                    g.dims(),
                    slot.var.dims()
                )));
            }
        }
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        let base = fused::Step {
            b1: b1 as f32,
            b2: b2 as f32,
            step_size: (lr / c1) as f32,
            sqrt_c2: c2.sqrt() as f32,
            eps: self.cfg.eps as f32,
            decay: 1.0,
            grad_scale: grad_scale as f32,
        };
        for slot in &mut self.slots {
            let g = &grads[&slot.name];
            let theta = slot.var.as_tensor();
            let decay = if theta.rank() >= 2 {
                1.0 - lr * self.cfg.weight_decay
            } else {
                1.0
            };
            let step = fused::Step {
                decay: decay as f32,
                ..base
            };
            match &mut slot.moments {
                Moments::Host { m, v } if fused::applies(g) => {
                    fused::adamw(theta, g, m, v, step)?;
                }
                Moments::Host { .. } => {
                    return Err(Error::Shape(format!(
                        "AdamW: gradient of `{}` is {:?} on {:?}, the parameter f32 on the CPU",
                        slot.name,
                        g.dtype(),
                        g.device()
                    )));
                }
                Moments::Device { m, v } => {
                    let new = device_step(theta, g, m, v, step)?;
                    slot.var.set(&new)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the moments (`NAME.exp_avg`, `NAME.exp_avg_sq`) and the step count (metadata
    /// `step`) to one safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.slots.len());
        for s in &self.slots {
            let (m, v) = s.moment_tensors()?;
            tensors.push((format!("{}.exp_avg", s.name), m));
            tensors.push((format!("{}.exp_avg_sq", s.name), v));
        }
        let meta = HashMap::from([
            ("format".to_string(), "aha-adamw".to_string()),
            ("step".to_string(), self.steps.to_string()),
        ]);
        safetensors::serialize_to_file(tensors, Some(meta), path).map_err(|e| Error::Checkpoint {
            path: path.into(),
            message: format!("writing optimizer state: {e}"),
        })
    }

    /// Restores the state written by [`AdamW::save`]; every parameter's moments must be there
    /// with its shape.
    pub fn load(&mut self, path: &Path, device: &Device) -> Result<()> {
        let bad = |message: String| Error::Checkpoint {
            path: path.into(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let steps = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("step"))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("metadata has no integer `step`".into()))?;
        let mut tensors = candle_core::safetensors::load_buffer(&bytes, device)?;
        for s in &mut self.slots {
            let mut take = |suffix: &str| -> Result<Tensor> {
                let key = format!("{}.{suffix}", s.name);
                let t = tensors
                    .remove(&key)
                    .ok_or_else(|| bad(format!("tensor `{key}` is missing")))?;
                if t.dims() != s.var.dims() {
                    return Err(bad(format!(
                        "tensor `{key}` has shape {:?}, the parameter {:?}",
                        t.dims(),
                        s.var.dims()
                    )));
                }
                Ok(t.to_dtype(DType::F32)?)
            };
            let (m, v) = (take("exp_avg")?, take("exp_avg_sq")?);
            s.set_moments(m, v)?;
        }
        self.steps = steps;
        Ok(())
    }
}

/// The update of [`fused::Step`] composed from candle ops, for parameters off the CPU: updates
/// `m` and `v` and returns the new θ.
fn device_step(
    theta: &Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    s: fused::Step,
) -> Result<Tensor> {
    let (b1, b2) = (s.b1 as f64, s.b2 as f64);
    let g = g.affine(s.grad_scale as f64, 0.0)?;
    *m = (m.affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?;
    *v = (v.affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
    let denom = v.sqrt()?.affine(1.0 / s.sqrt_c2 as f64, s.eps as f64)?;
    let update = (&*m / denom)?.affine(s.step_size as f64, 0.0)?;
    Ok((theta.affine(s.decay as f64, 0.0)? - update)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (BTreeMap<String, Var>, AdamW) {
        let var = Var::new(&[[1.0f32, -2.0]], &Device::Cpu).unwrap();
        let vars = BTreeMap::from([("w".to_string(), var)]);
        let cfg = AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        };
        let opt = AdamW::new(&vars, cfg).unwrap();
        (vars, opt)
    }

    fn grad(g: [f32; 2]) -> Gradients {
        BTreeMap::from([("w".to_string(), Tensor::new(&[g], &Device::Cpu).unwrap())])
    }

    fn values(vars: &BTreeMap<String, Var>) -> Vec<f32> {
        vars["w"]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn two_steps_match_torch_formula() {
        // Hand-computed with torch.optim.AdamW's update (lr 0.1, λ 0.01, default betas).
        let (vars, mut opt) = setup();
        opt.step(&grad([0.5, -0.1]), 0.1).unwrap();
        close(&values(&vars), &[0.899, -1.898]);
        opt.step(&grad([-0.5, 0.3]), 0.1).unwrap();
        close(&values(&vars), &[0.9033642, -1.945521]);
        assert_eq!(opt.steps(), 2);
    }

    #[test]
    fn saved_state_resumes_identically() {
        let dir = std::env::temp_dir().join(format!("aha_adamw_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("optimizer.safetensors");
        let (vars, mut opt) = setup();
        opt.step(&grad([0.5, -0.1]), 0.1).unwrap();
        opt.save(&path).unwrap();
        let after_one = values(&vars);
        opt.step(&grad([-0.5, 0.3]), 0.1).unwrap();
        let want = values(&vars);

        let var = Var::from_vec(after_one, (1, 2), &Device::Cpu).unwrap();
        let vars2 = BTreeMap::from([("w".to_string(), var)]);
        let mut opt2 = AdamW::new(&vars2, *opt.config()).unwrap();
        opt2.load(&path, &Device::Cpu).unwrap();
        assert_eq!(opt2.steps(), 1);
        opt2.step(&grad([-0.5, 0.3]), 0.1).unwrap();
        assert_eq!(values(&vars2), want);

        // A state for another model is refused with the tensor's name.
        let other = BTreeMap::from([("v".to_string(), Var::new(&[1.0f32], &Device::Cpu).unwrap())]);
        let mut opt3 = AdamW::new(&other, AdamWConfig::default()).unwrap();
        let err = opt3.load(&path, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("v.exp_avg"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_gradient_is_an_error() {
        let (_vars, mut opt) = setup();
        assert!(opt.step(&BTreeMap::new(), 0.1).is_err());
    }
}
