//! The GRPO family's maths as pure functions: advantages, the clipped policy loss, KL estimators,
//! loss aggregation, overlong handling and the dynamic-sampling filter. Each variant is an enum
//! matched exhaustively and serialised in snake_case for the config. No state, no I/O: the
//! trainer (`grpo`) calls these.

pub mod advantage;
pub mod aggregate;
pub mod filter;
pub mod kl;
pub mod overlong;
pub mod policy_loss;

pub use advantage::{group_advantages, AdvantageNorm};
pub use aggregate::{aggregate, BatchTotals, LossAggregation};
pub use filter::informative_groups;
pub use kl::{kl_penalty, KlEstimator};
pub use overlong::{overlong_effect, Overlong, OverlongEffect};
pub use policy_loss::{policy_loss, Clip, PolicyLoss};
