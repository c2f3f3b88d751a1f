//! Ops that carry a backward pass, as fast CPU custom ops.
//!
//! candle's fused CPU kernels (`candle_nn::ops::softmax_last_dim`, `rms_norm`, `rotary_emb::rope`,
//! `RmsNorm::forward` on contiguous input) have no backward and silently cut the gradient. These
//! functions are the training versions: one pass per row forward, one kernel backward, each a
//! candle `CustomOp` so autodiff sees them. [`reference`] keeps the same maths composed from candle
//! primitives, for tests. Rollouts, which build no graph, may use candle's fused kernels directly.
//!
//! Inputs are made contiguous on entry; they must be f32 on the CPU (other dtypes and devices get
//! an error naming the op). Every function checks its shapes on entry.

mod attention;
mod cpu;
mod linear;
mod logprobs;
pub mod reference;
mod rms_norm;
mod rope;
mod softmax;
mod swiglu;

pub use attention::attention;
pub use linear::linear;
pub use logprobs::{entropy, token_logprobs};
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use softmax::softmax_last_dim;
pub use swiglu::swiglu;
