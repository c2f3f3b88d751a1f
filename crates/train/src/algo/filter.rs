//! Dynamic sampling (DAPO, arXiv:2503.14476 §3.2): a group whose rewards are all equal has zero
//! advantage everywhere and so no policy gradient; dropping it and refilling the batch keeps the
//! number of informative prompts per step steady. This file decides which groups to keep; the
//! refill loop lives in the trainer.

/// rewards: (B·G) in groups of `g` → (B): whether each group carries a learning signal, that is
/// at least two judged rewards that differ.
pub fn informative_groups(rewards: &[Option<f32>], g: usize) -> Vec<bool> {
    if g == 0 {
        return Vec::new();
    }
    rewards
        .chunks(g)
        .map(|group| {
            let mut judged = group.iter().flatten();
            match judged.next() {
                None => false,
                Some(first) => judged.any(|r| r != first),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_groups_with_differing_rewards() {
        let r = [
            Some(1.0),
            Some(1.0),
            Some(0.0),
            Some(1.0),
            Some(1.0),
            None,
            None,
            None,
            Some(0.5),
        ];
        assert_eq!(informative_groups(&r, 3), [true, false, false]);
        assert_eq!(informative_groups(&[Some(0.0), Some(0.0)], 2), [false]);
    }
}
