//! The host's checks on what an environment plugin declares and fills:
//! buffer shapes, every violation of a batch named, declared tasks bounded,
//! derived seeds.

use super::*;

fn labeled(inputs: usize, classes: usize) -> Task {
    Task::Classification { inputs, classes }
}

fn filled(shape: &Shape, f: impl FnOnce(&mut Filled)) -> Filled {
    let mut b = Filled::blank(shape);
    b.x.iter_mut().for_each(|v| *v = 0.5);
    b.y.iter_mut().for_each(|v| *v = -0.5);
    b.labels.iter_mut().for_each(|v| *v = 1);
    b.tokens.iter_mut().for_each(|v| *v = 2);
    b.written = shape.n;
    f(&mut b);
    b
}

#[test]
fn shapes_follow_the_task_and_refuse_absurd_sizes() {
    let s = Shape::of(
        &Task::SequenceClassification {
            inputs: 3,
            classes: 2,
            steps: 5,
        },
        4,
    )
    .unwrap();
    assert_eq!(
        (s.kind, s.x, s.labels, s.steps),
        (LN_DATA_SEQUENCES, 60, 20, 5)
    );
    let t = Shape::of(
        &Task::NextToken {
            vocab: 9,
            context: 7,
        },
        2,
    )
    .unwrap();
    assert_eq!((t.tokens, t.steps, t.x), (16, 8, 0));
    assert_eq!(t.bytes(), 64);
    let err = Shape::of(&labeled(1 << 20, 2), 1 << 12).unwrap_err();
    assert!(err.contains("exceed"), "{err}");
    assert!(Shape::of(&labeled(usize::MAX, 2), 3).is_err());
}

#[test]
fn a_complete_batch_passes_and_every_violation_is_named() {
    let task = labeled(2, 3);
    let shape = Shape::of(&task, 4).unwrap();
    let ok = check(&task, &shape, filled(&shape, |_| {})).unwrap();
    assert_eq!(ok.len(), 4);
    let cases: Vec<(Box<dyn FnOnce(&mut Filled)>, &str)> = vec![
        (
            Box::new(|b| b.written = 3),
            "wrote 3 examples; 4 were asked for",
        ),
        (
            Box::new(|b| b.x[5] = f32::NAN),
            "x[5] (example 2) is NaN (left unwritten",
        ),
        (
            Box::new(|b| b.x[7] = f32::INFINITY),
            "x[7] (example 3) is inf",
        ),
        (
            Box::new(|b| b.labels[1] = 3),
            "labels[1] (example 1) is 3; expected below 3",
        ),
        (
            Box::new(|b| b.labels[2] = UNSET),
            "(example 2) is 4294967294 (left unwritten)",
        ),
        (
            Box::new(|b| b.labels[0] = IGNORE),
            "labels[0] (example 0) is 4294967295",
        ),
        (
            Box::new(|b| b.x.pop().map(drop).unwrap_or(())),
            "buffers of",
        ),
    ];
    for (break_it, expected) in cases {
        let err = check(&task, &shape, filled(&shape, break_it)).unwrap_err();
        assert!(err.contains(expected), "{err} lacks {expected}");
    }
}

#[test]
fn sequences_may_ignore_steps_and_tokens_stay_in_the_vocabulary() {
    let seq = Task::SequenceClassification {
        inputs: 1,
        classes: 2,
        steps: 3,
    };
    let shape = Shape::of(&seq, 2).unwrap();
    let b = check(&seq, &shape, filled(&shape, |b| b.labels[4] = IGNORE)).unwrap();
    assert!(matches!(b, Batch::Sequences { steps: 3, .. }));
    let tok = Task::NextToken {
        vocab: 3,
        context: 2,
    };
    let shape = Shape::of(&tok, 2).unwrap();
    assert!(check(&tok, &shape, filled(&shape, |_| {})).is_ok());
    let err = check(&tok, &shape, filled(&shape, |b| b.tokens[5] = 3)).unwrap_err();
    assert!(
        err.contains("tokens[5] (example 1) is 3; expected below 3"),
        "{err}"
    );
    let reg = Task::Regression {
        inputs: 2,
        outputs: 2,
    };
    let shape = Shape::of(&reg, 3).unwrap();
    let err = check(&reg, &shape, filled(&shape, |b| b.y[4] = f32::NAN)).unwrap_err();
    assert!(err.contains("y[4] (example 2)"), "{err}");
}

fn described(kind: u32, inputs: usize, outputs: usize, steps: usize) -> Described {
    Described {
        task: LnTask {
            kind,
            inputs,
            outputs,
            steps,
            heldout: 10,
            n_probes: 0,
            has_direction: 0,
        },
        probes: Vec::new(),
        direction: None,
    }
}

#[test]
fn declared_tasks_are_bounded_before_anything_is_sized_from_them() {
    assert_eq!(
        checked(&described(LN_DATA_LABELED, 4, 3, 0)).unwrap().0,
        labeled(4, 3)
    );
    let cases = [
        (described(9, 4, 3, 0), "kind 9"),
        (described(LN_DATA_LABELED, 0, 3, 0), "inputs = 0"),
        (described(LN_DATA_LABELED, 4, 1, 0), "outputs (classes) = 1"),
        (described(LN_DATA_SEQUENCES, 4, 3, 0), "steps = 0"),
        (described(LN_DATA_TOKENS, 0, 50, 1 << 20), "steps (context)"),
        (
            described(LN_DATA_DENSE, 1 << 30, 1, 0),
            "inputs = 1073741824",
        ),
    ];
    for (d, expected) in cases {
        let err = checked(&d).unwrap_err();
        assert!(err.contains(expected), "{err} lacks {expected}");
    }
    let mut d = described(LN_DATA_LABELED, 2, 3, 0);
    d.task.heldout = 0;
    assert!(checked(&d).unwrap_err().contains("heldout = 0"));

    let mut d = described(LN_DATA_LABELED, 2, 3, 0);
    d.probes = vec![("ok".into(), 5, Some(vec![0, 2])), ("ok".into(), 5, None)];
    assert!(
        checked(&d)
            .unwrap_err()
            .contains("two probe sets are named `ok`")
    );
    d.probes = vec![("Bad".into(), 5, None)];
    assert!(checked(&d).unwrap_err().contains("`Bad` is not made of"));
    d.probes = vec![("p".into(), 5, Some(vec![3]))];
    assert!(
        checked(&d)
            .unwrap_err()
            .contains("label 3, but the task has 3 classes")
    );
    d.probes = vec![("p".into(), 5, Some(vec![1, 2]))];
    d.direction = Some(vec![1.0]);
    assert!(
        checked(&d)
            .unwrap_err()
            .contains("1 values, but the task has 2 inputs")
    );
    d.direction = Some(vec![1.0, f32::NAN]);
    assert!(checked(&d).unwrap_err().contains("value 1 is NaN"));
    d.direction = Some(vec![1.0, 0.0]);
    let (_, probes, direction) = checked(&d).unwrap();
    assert_eq!((probes.len(), direction), (1, Some(vec![1.0, 0.0])));

    let mut d = described(LN_DATA_DENSE, 2, 1, 0);
    d.probes = vec![("p".into(), 5, None)];
    assert!(
        checked(&d)
            .unwrap_err()
            .contains("classification or sequence")
    );
}

#[test]
fn derived_seeds_differ_from_each_other_and_from_the_run_seed() {
    let seeds: Vec<u64> = (0..64).map(|k| derive_seed(7, k)).collect();
    let mut unique = seeds.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seeds.len());
    assert!(!seeds.contains(&7));
    assert_ne!(derive_seed(7, 0), derive_seed(8, 0));
    assert_eq!(derive_seed(7, 3), derive_seed(7, 3));
}
