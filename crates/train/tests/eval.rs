//! Evaluation on a model that has learned something: SFT a tiny model on 1-digit sums, then
//! greedy evaluation scores it, sampled evaluation's pass@k is monotone in k, maj@K is
//! consistent with the per-item votes.

use aha_train::data::{Item, PromptTemplate};
use aha_train::eval::{evaluate, EvalConfig};
use aha_train::init_model::init_policy;
use aha_train::optim::OptimConfig;
use aha_train::sft::{Example, LossOn, SftConfig, SftTrainer};
use aha_verify::Task;
use candle_core::Device;

#[test]
fn sft_then_eval_scores_the_learned_task() {
    let (model, tok) = init_policy("demo_tiny", 0, &Device::Cpu).unwrap();
    let template = PromptTemplate::Format {
        format: "Q:{prompt}=".into(),
    };
    let items: Vec<Item> = (0..5)
        .flat_map(|a| (0..4).map(move |b| (a, b)))
        .map(|(a, b)| Item::new(format!("{a}+{b}"), Some((a + b).to_string()), None, None))
        .collect();
    let examples: Vec<Example> = items
        .iter()
        .map(|it| Example {
            prompt_ids: template.encode(it, &tok).unwrap(),
            completion_ids: [
                tok.encode(
                    &format!("<answer>{}</answer>", it.answer.as_ref().unwrap()),
                    false,
                )
                .unwrap(),
                vec![0],
            ]
            .concat(),
        })
        .collect();
    let sft = SftConfig {
        optim: OptimConfig {
            lr: 3e-3,
            ..OptimConfig::default()
        },
        micro_batch_size: 20,
        loss_on: LossOn::Completion,
    };
    let mut trainer = SftTrainer::new(model, sft, 150).unwrap();
    for _ in 0..150 {
        trainer.step(&examples).unwrap();
    }
    let greedy = EvalConfig {
        k: 1,
        temperature: 0.0,
        max_new_tokens: 12,
        template: template.clone(),
        prompts_per_batch: 7,
        task: Task::Arithmetic,
        ..EvalConfig::default()
    };
    let (s, per_item) = evaluate(trainer.model(), &tok, &items, &greedy).unwrap();
    assert_eq!(s.problems, 20);
    assert!(s.pass_at_1 >= 0.9, "{s:?}");
    assert_eq!(
        s.maj_at_k, s.pass_at_1,
        "with one greedy sample the vote is that sample"
    );
    assert_eq!(per_item[3].index, 3);

    let sampled = EvalConfig {
        k: 4,
        temperature: 1.0,
        top_p: 1.0,
        ..greedy
    };
    let (s, per_item) = evaluate(trainer.model(), &tok, &items, &sampled).unwrap();
    let p: Vec<f64> = s.pass_at_k.values().copied().collect();
    assert_eq!(s.pass_at_k.keys().copied().collect::<Vec<_>>(), [1, 2, 4]);
    assert!((p[0] - s.pass_at_1).abs() < 1e-12);
    assert!(p[0] <= p[1] && p[1] <= p[2], "{p:?}");
    for r in &per_item {
        assert_eq!(r.completions.len(), 4);
        if r.majority_correct {
            assert_eq!(r.majority_answer.as_deref(), r.answer.as_deref());
        }
    }
}
