//! KL(policy ‖ base) on the step's own rollouts, for the demo's KL curve.
//!
//! The demo trains with β = 0 (as the prototype did), so the trainer computes no KL; this
//! measures it anyway, with the k1 estimator of [`aha_train::algo::kl_penalty`] (log π − log π_base,
//! unbiased) averaged over the sampled completion tokens; k3 is unbounded when the policy
//! samples tokens the base model all but ruled out, and spiked to 190 nats in trials. It builds no autodiff graph and changes nothing.

use aha_model::Model;

use crate::DemoError;
use aha_model::tokenizer::Tokenizer;
use aha_train::algo::{kl_penalty, KlEstimator};
use aha_train::batch::{masked_mean, token_logprobs, LossTokens, Packed, SeqRef};
use aha_train::metrics::Sample;

/// Mean per-token k1 KL of `policy` from `reference` over `samples` (text re-encoded; the
/// character tokenizer round-trips exactly). An EOS closes every completion that was not truncated.
pub fn sampled_kl(
    policy: &Model,
    reference: &Model,
    tok: &Tokenizer,
    samples: &[Sample],
    eos: u32,
) -> Result<f64, DemoError> {
    if samples.is_empty() {
        return Ok(0.0);
    }
    let mut seqs = Vec::with_capacity(samples.len());
    for s in samples {
        let prompt = tok.encode(&s.prompt, false)?;
        let mut completion = tok.encode(&s.completion, false)?;
        if !s.truncated {
            completion.push(eos);
        }
        seqs.push((prompt, completion));
    }
    let refs: Vec<SeqRef<'_>> = seqs
        .iter()
        .map(|(p, c)| SeqRef {
            prompt: p,
            completion: c,
        })
        .collect();
    let packed = Packed::new(&refs, eos, policy.device())?;
    let mask = packed.loss_mask(LossTokens::Completion, None)?;
    let (logp, _) = token_logprobs(&policy.detached(), &packed, 1.0, false)?;
    let (ref_logp, _) = token_logprobs(reference, &packed, 1.0, false)?;
    let kl = kl_penalty(&logp, &ref_logp, KlEstimator::K1)?;
    Ok(masked_mean(&kl, &mask)?)
}
