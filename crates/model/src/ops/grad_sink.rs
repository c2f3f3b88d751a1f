//! Weight gradients handed to the gradient store as they are, not added into it by candle.
//!
//! candle's backward adds every gradient an op returns into its store: a new zero tensor of the
//! weight's size, then an addition into another new one — two passes over every weight, on the
//! calling thread alone while the other cores wait (on the d-1024 training shape, ~45M weights,
//! that was 5% of the step). The fused ops compute each weight's whole gradient in one piece.
//! Inside [`backward`] they hand it over through this thread's sink instead of returning it, and
//! [`backward`] puts it into the store afterwards. Outside [`backward`] (a plain
//! `loss.backward()`) nothing changes: the ops return their gradients to candle as before.

use std::cell::RefCell;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

thread_local! {
    /// Gradients delivered during the [`backward`] running on this thread (candle runs every
    /// op's backward on the thread that called it).
    static SINK: RefCell<Option<Vec<(Tensor, Tensor)>>> = const { RefCell::new(None) };
}

/// `loss.backward()`, with the fused ops' weight gradients put into the store directly.
/// Same gradients; a weight that also got gradient through candle's own ops gets the sum.
pub fn backward(loss: &Tensor) -> Result<GradStore> {
    let outer = SINK.with(|s| s.replace(Some(Vec::new())));
    let result = loss.backward();
    let delivered = SINK.with(|s| s.replace(outer)).unwrap_or_default();
    let mut store = result?;
    for (weight, grad) in delivered {
        let grad = match store.remove(&weight) {
            Some(other) => (other + grad)?,
            None => grad,
        };
        store.insert(&weight, grad);
    }
    Ok(store)
}

/// From a fused op's backward: `None` when [`backward`] on this thread took the gradient, else
/// the gradient back, for the op to return to candle.
pub(crate) fn deliver(weight: &Tensor, grad: Tensor) -> Option<Tensor> {
    SINK.with(|s| match s.borrow_mut().as_mut() {
        Some(sink) => {
            sink.push((weight.clone(), grad));
            None
        }
        None => Some(grad),
    })
}
