//! Tests of the conditions report on synthetic experiments: hand-computed
//! statistics, the baseline, the files written, unfinished runs and
//! damaged records.

use std::path::Path;

use serde_json::{Value, json};

use crate::plot::CURVES_SVG;
use crate::read::{CONDITIONS, CURVES, GENERATIONS, MANIFEST, METRICS, ORGANISMS, Outcome};
use crate::render::WIDTH;
use crate::stats::Stat;
use crate::{REPORT_CSV, REPORT_JSON, Report, ReportError};

/// What one synthetic seed run holds at its last generation (2).
struct Fake {
    /// `fitness_best` of the last generation.
    best: f64,
    /// Final held-out loss: the two organisms have this ± 0.5.
    heldout: f64,
    /// `mc:language/xent_gap`: the two organisms have this ± 1.
    gap: f64,
    /// Mean held-out loss at steps 0 and 10.
    curve: [f64; 2],
}

/// Writes an ordinary run directory with three generations, of which
/// only the last counts: two organisms that learned and one that
/// diverged (NaN values, left out of every mean).
fn write_run(dir: &Path, f: &Fake) {
    std::fs::create_dir_all(dir).unwrap();
    let manifest = json!({
        "lineage_version": "0.1.0",
        "git_commit": null,
        "stream_derivation": 1,
        "scenario": "demo",
        "scenario_sha256": "0".repeat(64),
        "seed": 1,
        "threads": 1,
        "host": "test",
        "started": "2025-01-01T00:00:00Z",
        "finished": "2025-01-01T00:01:00Z",
        "generations_completed": 3,
        "stop_reason": null,
        "sessions": [],
        "plugins": [],
    });
    std::fs::write(dir.join(MANIFEST), manifest.to_string()).unwrap();
    let header = "generation,population,evaluated,invalid,fitness_best,fitness_mean,\
                  fitness_median,fitness_worst,diversity,phase,eval_errors";
    let generations = format!(
        "{header}\n0,3,3,0,100,0,0,0,0.5,0,0\n1,3,3,0,200,0,0,0,0.5,0,0\n\
         2,3,3,1,{},0,0,0,0.5,0,0\n",
        f.best
    );
    std::fs::write(dir.join(GENERATIONS), generations).unwrap();
    let (lo, hi) = (f.heldout - 0.5, f.heldout + 0.5);
    let organisms = format!(
        "id,birth,generation,parent1,parent2,fitness,lifetime,birth_heldout,final_heldout,genome\n\
         1,1,1,,,1,completed,9,99,ones=1/8 fp=00000001 x=0.5\n\
         7,2,2,1,,1,completed,3,{lo},ones=3/8 fp=0000abcd x=0.500000;0.250000\n\
         8,2,2,1,2,2,completed,5,{hi},ones=4/8 fp=0000abce\n\
         9,2,2,1,,NaN,diverged at step 5,7,NaN,ones=5/8 fp=0000abcf\n"
    );
    std::fs::write(dir.join(ORGANISMS), organisms).unwrap();
    let metrics = format!(
        "id,generation,suite,metric,value\n\
         1,1,mc:language,xent_gap,1000\n\
         7,2,mc:language,xent_gap,{}\n\
         8,2,mc:language,xent_gap,{}\n\
         9,2,mc:language,xent_gap,NaN\n\
         9,2,mc:language,accuracy,inf\n",
        f.gap - 1.0,
        f.gap + 1.0
    );
    std::fs::write(dir.join(METRICS), metrics).unwrap();
    let [c0, c10] = f.curve;
    let curves = format!(
        "id,generation,step,train_loss,heldout_loss\n\
         1,1,0,9,9\n1,1,10,9,9\n\
         7,2,0,1,{}\n7,2,10,1,{}\n\
         8,2,0,1,{}\n8,2,10,1,{}\n\
         9,2,0,1,{c0}\n9,2,5,1,NaN\n",
        c0 - 0.25,
        c10 - 0.25,
        c0 + 0.25,
        c10 + 0.25,
    );
    std::fs::write(dir.join(CURVES), curves).unwrap();
}

/// Two conditions of three seeds; the second also names a seed whose
/// run has not been made.
fn write_example(dir: &Path) {
    let a = [
        Fake {
            best: 1.0,
            heldout: 2.0,
            gap: 0.5,
            curve: [4.0, 2.0],
        },
        Fake {
            best: 2.0,
            heldout: 2.5,
            gap: 1.0,
            curve: [5.0, 2.5],
        },
        Fake {
            best: 3.0,
            heldout: 3.0,
            gap: 1.5,
            curve: [6.0, 3.0],
        },
    ];
    let b = [
        Fake {
            best: 4.0,
            heldout: 1.0,
            gap: 0.0,
            curve: [4.0, 1.0],
        },
        Fake {
            best: 6.0,
            heldout: 1.5,
            gap: 0.0,
            curve: [4.0, 1.5],
        },
        Fake {
            best: 8.0,
            heldout: 3.5,
            gap: 3.0,
            curve: [4.0, 3.5],
        },
    ];
    for (name, fakes) in [("Connectome", &a), ("Shuffled", &b)] {
        for (s, f) in fakes.iter().enumerate() {
            write_run(&dir.join(format!("conditions/{name}/seed-{}", s + 1)), f);
        }
    }
    let json = r#"{"scenario": "demo", "conditions": [
        {"name": "Connectome", "from": null, "seeds": [1, 2, 3],
         "runs": ["conditions/Connectome/seed-1", "conditions/Connectome/seed-2",
                  "conditions/Connectome/seed-3"]},
        {"name": "Shuffled", "from": "outer", "seeds": [1, 2, 3, 4],
         "runs": ["conditions/Shuffled/seed-1", "conditions/Shuffled/seed-2",
                  "conditions/Shuffled/seed-3", "conditions/Shuffled/seed-4"]}
    ]}"#;
    std::fs::write(dir.join(CONDITIONS), json).unwrap();
}

/// The text with every run of spaces made one, for comparing lines.
fn squeezed(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

fn check_stat(s: Option<Stat>, mean: f64, se: f64, n: usize) {
    let s = s.expect("a statistic");
    assert!(close(s.mean, mean), "mean {} != {mean}", s.mean);
    assert!(close(s.se.unwrap(), se), "se {:?} != {se}", s.se);
    assert_eq!(s.n, n);
}

#[test]
fn aggregates_match_hand_computation() {
    let tmp = tempfile::tempdir().unwrap();
    write_example(tmp.path());
    let r = Report::read(tmp.path(), None, None).unwrap();
    assert_eq!(
        r.metrics,
        [
            "fitness",
            "birth_heldout",
            "final_heldout",
            "mc:language/xent_gap"
        ]
    );
    let [a, b] = &r.conditions[..] else {
        panic!("two conditions")
    };
    assert_eq!((a.finished(), b.finished()), (3, 3));
    assert_eq!(b.runs[3].outcome, Outcome::NotRun);
    let s3 = 3f64.sqrt();
    // fitness: A = 1, 2, 3 (mean 2, sd 1); B = 4, 6, 8 (mean 6, sd 2).
    check_stat(a.stats[0], 2.0, 1.0 / s3, 3);
    check_stat(b.stats[0], 6.0, 2.0 / s3, 3);
    // birth_heldout: every run's organisms have 3 and 5 (the diverged
    // 7 still counts: its birth loss is finite), mean 5, sd 0.
    check_stat(a.stats[1], 5.0, 0.0, 3);
    // final_heldout: A = 2, 2.5, 3 (sd 0.5); B = 1, 1.5, 3.5 (mean 2,
    // deviations -1, -0.5, 1.5: sd = sqrt(3.5 / 2)).
    check_stat(a.stats[2], 2.5, 0.5 / s3, 3);
    check_stat(b.stats[2], 2.0, 1.75f64.sqrt() / s3, 3);
    // xent_gap: A = 0.5, 1, 1.5 (sd 0.5); B = 0, 0, 3 (mean 1, sd sqrt(3)).
    check_stat(a.stats[3], 1.0, 0.5 / s3, 3);
    check_stat(b.stats[3], 1.0, 1.0, 3);
    assert_eq!(a.values[0], [Some(1.0), Some(2.0), Some(3.0)]);
    assert_eq!(b.values[0], [Some(4.0), Some(6.0), Some(8.0), None]);

    // fitness: difference 4, se sqrt(1/3 + 4/3), pooled sd
    // sqrt((2 * 1 + 2 * 4) / 4) = sqrt(2.5), d = 4 / sqrt(2.5).
    let e = r.effects[0][0].unwrap();
    assert!(close(e.difference, 4.0));
    assert!(close(e.se.unwrap(), (5.0f64 / 3.0).sqrt()));
    assert!(close(e.d.unwrap(), 4.0 / 2.5f64.sqrt()));
    // birth_heldout: no difference and no spread: d is undefined.
    let e = r.effects[0][1].unwrap();
    assert_eq!((e.difference, e.se, e.d), (0.0, Some(0.0), None));
    // final_heldout: -0.5, se sqrt(0.25 / 3 + 1.75 / 3) = sqrt(2 / 3),
    // pooled sd sqrt((2 * 0.25 + 2 * 1.75) / 4) = 1, d = -0.5.
    let e = r.effects[0][2].unwrap();
    assert!(close(e.difference, -0.5));
    assert!(close(e.se.unwrap(), (2.0f64 / 3.0).sqrt()));
    assert!(close(e.d.unwrap(), -0.5));
    // xent_gap: 0, se sqrt(0.25 / 3 + 1), d 0.
    let e = r.effects[0][3].unwrap();
    assert!(close(e.se.unwrap(), (0.25f64 / 3.0 + 1.0).sqrt()));
    assert_eq!(e.d, Some(0.0));

    // Paired by seed over seeds 1-3 (Shuffled's seed 4 did not run).
    // fitness: differences 3, 4, 5: mean 4, sd 1, se 1 / sqrt(3), 95%
    // interval 4 ± t(0.975, 2) / sqrt(3), higher in 3 of 3 seeds; the
    // unpaired se is sqrt(5 / 3).
    let p = r.effects[0][0].unwrap().paired.unwrap();
    assert!(close(p.mean, 4.0) && close(p.se.unwrap(), 1.0 / s3));
    let (lo, hi) = p.ci.unwrap();
    assert!((hi - 4.0 - 4.302_652_730 / s3).abs() < 1e-6 && close(lo + hi, 8.0));
    assert_eq!((p.n, p.higher, p.lower), (3, 3, 0));
    // final_heldout: differences -1, -1, 0.5: mean -0.5, sd sqrt(0.75),
    // se 0.5; higher in 1 seed, lower in 2.
    let p = r.effects[0][2].unwrap().paired.unwrap();
    assert!(close(p.mean, -0.5) && close(p.se.unwrap(), 0.5));
    assert_eq!((p.n, p.higher, p.lower), (3, 1, 2));
    // birth_heldout: equal in every seed.
    let p = r.effects[0][1].unwrap().paired.unwrap();
    assert_eq!((p.mean, p.se, p.higher, p.lower), (0.0, Some(0.0), 0, 0));

    // The curves: step 5 has only a NaN, so it is left out; at step 0
    // the diverged organism counts. A at step 0: per run (c0 - 0.25 +
    // c0 + 0.25 + c0) / 3 = c0, so 4, 5, 6.
    let steps: Vec<u64> = a.curve.iter().map(|p| p.step).collect();
    assert_eq!(steps, [0, 10]);
    assert!(close(a.curve[0].mean, 5.0) && close(a.curve[0].se.unwrap(), 1.0 / s3));
    assert!(close(a.curve[1].mean, 2.5) && close(a.curve[1].se.unwrap(), 0.5 / s3));
    assert!(close(b.curve[0].mean, 4.0) && b.curve[0].se == Some(0.0));
    assert!(close(b.curve[1].mean, 2.0) && close(b.curve[1].se.unwrap(), 1.75f64.sqrt() / s3));
}

#[test]
fn a_baseline_leads_and_effects_are_against_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_example(tmp.path());
    let r = Report::read(tmp.path(), Some("Shuffled"), None).unwrap();
    assert_eq!(r.conditions[0].name, "Shuffled");
    assert_eq!(r.conditions[1].name, "Connectome");
    let fitness = r.metrics.iter().position(|m| m == "fitness").unwrap();
    let effect = r.effects[0][fitness].as_ref().unwrap();
    assert!(close(effect.difference, -4.0), "{effect:?}");
    let e = Report::read(tmp.path(), Some("Nope"), None).unwrap_err();
    assert!(
        matches!(&e, ReportError::NoSuchCondition { name, conditions }
            if name == "Nope" && conditions == &["Connectome", "Shuffled"]),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "no condition `Nope` (conditions: Connectome, Shuffled)"
    );
}

#[test]
fn writes_the_report_files_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    write_example(tmp.path());
    let r = Report::read(tmp.path(), None, None).unwrap();
    let text = r.text(tmp.path());
    println!("{text}");
    assert!(
        text.contains("seed 4: conditions/Shuffled/seed-4 (not run)"),
        "{text}"
    );
    let lines = squeezed(&text);
    for line in [
        "condition n fitness birth_heldout final_heldout mc:language/xent_gap",
        "Connectome 3 2.000 ± 0.5774 5.000 ± 0.000 2.500 ± 0.2887 1.000 ± 0.2887",
        "Shuffled 3 6.000 ± 1.155 5.000 ± 0.000 2.000 ± 0.7638 1.000 ± 1.000",
        "fitness +4.000 ± 1.291 d=2.53",
        "birth_heldout 0.000 ± 0.000",
        "final_heldout -0.5000 ± 0.8165 d=-0.500",
        "mc:language/xent_gap 0.000 ± 1.041 d=0.00",
        "fitness +4.000 ± 0.5774 [1.516, 6.484] 3/3",
        "Shuffled 3 6.000 [4.000, 8.000] 5.000 [5.000, 5.000] 1.500 [1.000, 3.500]",
        "final_heldout -0.5000 ± 0.5000 [-2.651, 1.651] 1/3",
    ] {
        assert!(lines.contains(&format!("\n{line}\n")), "{line}\n{text}");
    }
    assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
    let written = r.write(tmp.path()).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "report.json",
            "report.csv",
            "report-seeds.csv",
            "report-curves.svg",
            "report-fitness.svg",
            "report-birth_heldout.svg",
            "report-final_heldout.svg",
            "report-mc-language-xent_gap.svg",
        ]
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join(REPORT_JSON)).unwrap())
            .unwrap();
    let shuffled = &json["conditions"][1];
    assert_eq!(shuffled["from"], "outer");
    assert_eq!(shuffled["seeds"], json!([1, 2, 3, 4]));
    assert_eq!(shuffled["runs"][3]["status"], "not run");
    assert_eq!(shuffled["metrics"]["fitness"]["mean"], 6.0);
    assert_eq!(shuffled["metrics"]["fitness"]["n"], 3);
    assert_eq!(
        shuffled["metrics"]["fitness"]["values"],
        json!([4.0, 6.0, 8.0, null])
    );
    assert_eq!(shuffled["curve"]["steps"], json!([0, 10]));
    assert_eq!(json["effects"][0]["metric"], "fitness");
    assert_eq!(json["effects"][0]["difference"], 4.0);
    assert_eq!(json["effects"][0]["paired"]["difference"], 4.0);
    assert_eq!(json["effects"][0]["paired"]["n"], 3);
    assert_eq!(json["effects"][0]["paired"]["higher"], 3);
    let csv = std::fs::read_to_string(tmp.path().join(REPORT_CSV)).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "condition,metric,mean,se,n,median,paired_difference,paired_se,paired_ci_low,\
             paired_ci_high,paired_n,paired_higher"
        )
    );
    assert_eq!(
        lines.next(),
        Some(format!("Connectome,fitness,2,{},3,2,,,,,,", 1.0 / 3f64.sqrt()).as_str())
    );
    let shuffled_fitness = csv
        .lines()
        .find(|l| l.starts_with("Shuffled,fitness,"))
        .unwrap();
    assert!(shuffled_fitness.ends_with(",3,3"), "{shuffled_fitness}");
    assert!(shuffled_fitness.contains(",4,0.577"), "{shuffled_fitness}");
    assert_eq!(csv.lines().count(), 1 + 2 * 4);
    let seeds = std::fs::read_to_string(tmp.path().join(crate::SEEDS_CSV)).unwrap();
    assert!(
        seeds.starts_with("condition,seed,metric,value,counted\n"),
        "{seeds}"
    );
    assert!(seeds.contains("\nShuffled,3,fitness,8,true\n"), "{seeds}");
    // Three finished runs a condition, four metrics each.
    assert_eq!(seeds.lines().count(), 1 + 2 * 3 * 4);
    for name in &names[3..] {
        let svg = std::fs::read_to_string(tmp.path().join(name)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("Shuffled"), "{name}");
    }
    let curves = std::fs::read_to_string(tmp.path().join(CURVES_SVG)).unwrap();
    assert!(curves.contains("<polyline") && curves.contains("<polygon"));
}

#[test]
fn a_condition_without_finished_runs_has_n_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_run(
        &dir.join("a/1"),
        &Fake {
            best: 1.0,
            heldout: 2.0,
            gap: 0.0,
            curve: [1.0, 1.0],
        },
    );
    // Started but not finished: skipped like a missing run.
    let unfinished = dir.join("b/1");
    write_run(
        &unfinished,
        &Fake {
            best: 9.0,
            heldout: 9.0,
            gap: 9.0,
            curve: [9.0, 9.0],
        },
    );
    let text = std::fs::read_to_string(unfinished.join(MANIFEST)).unwrap();
    let mut m: Value = serde_json::from_str(&text).unwrap();
    m["finished"] = Value::Null;
    std::fs::write(unfinished.join(MANIFEST), m.to_string()).unwrap();
    std::fs::write(
        dir.join(CONDITIONS),
        r#"{"scenario": "s", "conditions": [
            {"name": "A", "seeds": [1], "runs": ["a/1"]},
            {"name": "B", "from": null, "seeds": [1, 2], "runs": ["b/1", "b/2"]}]}"#,
    )
    .unwrap();
    let r = Report::read(dir, None, None).unwrap();
    let b = &r.conditions[1];
    assert_eq!(b.finished(), 0);
    assert_eq!(b.runs[0].outcome, Outcome::NotFinished);
    assert_eq!(b.runs[1].outcome, Outcome::NotRun);
    assert!(b.stats.iter().all(Option::is_none));
    // One seed: a mean without a standard error.
    let s = r.conditions[0].stats[0].unwrap();
    assert_eq!((s.mean, s.se, s.n), (1.0, None, 1));
    assert!(r.effects[0].iter().all(Option::is_none));
    let text = r.text(dir);
    assert!(
        text.contains("b/1 (not finished)") && text.contains("b/2 (not run)"),
        "{text}"
    );
    assert!(squeezed(&text).contains("\nB 0 - - - -\n"), "{text}");
    assert!(
        squeezed(&text).contains("\nA 1 1.000 5.000 2.000 0.000\n"),
        "{text}"
    );
    r.write(dir).unwrap();
    let csv = std::fs::read_to_string(dir.join(REPORT_CSV)).unwrap();
    assert!(csv.contains("\nB,fitness,,,0,,,,,,,\n"), "{csv}");
}

#[test]
fn bad_input_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let path = dir.join(CONDITIONS);
    for (json, expected) in [
        ("{", "is not a conditions index"),
        (r#"{"conditions": []}"#, "missing field `scenario`"),
        (r#"{"scenario": "s"}"#, "missing field `conditions`"),
        (
            r#"{"scenario": "s", "conditions": []}"#,
            "`conditions` is empty",
        ),
        (
            r#"{"scenario": "s", "conditions": [{"name": "A", "from": null, "seeds": [1]}]}"#,
            "missing field `runs`",
        ),
        (
            r#"{"scenario": "s", "conditions": [{"name": "A", "seeds": [1], "runs": []}]}"#,
            "0 runs for 1 seeds",
        ),
    ] {
        std::fs::write(&path, json).unwrap();
        let e = Report::read(dir, None, None).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        let e = e.to_string();
        assert!(
            e.starts_with(&path.display().to_string()) && e.contains(expected),
            "{json}: {e}"
        );
    }
    write_run(
        &dir.join("a"),
        &Fake {
            best: 1.0,
            heldout: 2.0,
            gap: 0.0,
            curve: [1.0, 1.0],
        },
    );
    std::fs::write(
        &path,
        r#"{"scenario": "s", "conditions": [{"name": "A", "seeds": [1], "runs": ["a"]}]}"#,
    )
    .unwrap();
    let metrics = dir.join("a").join(METRICS);
    std::fs::write(&metrics, "id,generation,suite,metric,value\n7,2,s,m,oops\n").unwrap();
    let e = Report::read(dir, None, None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}, line 2: column `value`: `oops` is not a number",
            metrics.display()
        )
    );
    std::fs::write(&metrics, "id,generation,suite,metric,value\n7,2,s\n").unwrap();
    let e = Report::read(dir, None, None).unwrap_err();
    assert!(
        matches!(&e, ReportError::Record { path, line: 2, .. } if path == &metrics),
        "{e}"
    );
    assert!(e.to_string().ends_with("expected 5 fields, found 3"), "{e}");
    // A cut generations.csv: its last row ends mid-field.
    std::fs::remove_file(&metrics).unwrap();
    let generations = dir.join("a").join(GENERATIONS);
    let text = std::fs::read_to_string(&generations).unwrap();
    let kept = text.trim_end().rsplit_once('\n').unwrap().0;
    std::fs::write(&generations, format!("{kept}\n2,3,3,1,1")).unwrap();
    let e = Report::read(dir, None, None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}, line 4: expected 11 fields, found 5",
            generations.display()
        )
    );
}

/// A run's probe sets become `<set>.final` and `<set>.peak` metrics of its
/// accuracy (not of its loss or accuracy over every label).
#[test]
fn probe_sets_are_summarised_by_their_final_and_peak_accuracy() {
    use crate::read::ProbeTrack;
    let track = |probe: &str, metric: &str, points: &[(u64, f64)]| ProbeTrack {
        probe: probe.into(),
        metric: metric.into(),
        points: points.to_vec(),
    };
    let tracks = [
        track("icl_novel", "loss", &[(0, 3.0), (10, 1.0)]),
        track("icl_novel", "accuracy", &[(0, 0.5), (10, 0.9), (20, 0.6)]),
        track("icl_novel", "accuracy_all", &[(0, 0.1), (10, 0.8)]),
        track("iwl", "accuracy", &[(0, 0.0), (10, 0.2), (20, 0.4)]),
        track("empty", "accuracy", &[]),
    ];
    assert_eq!(
        crate::stats::probe_summary(&tracks),
        [
            ("icl_novel.final".to_owned(), 0.6),
            ("icl_novel.peak".to_owned(), 0.9),
            ("iwl.final".to_owned(), 0.4),
            ("iwl.peak".to_owned(), 0.4),
        ]
    );
}

/// The probe plot shows each seed's accuracy (faint) beside the mean over
/// seeds, not the mean alone.
#[test]
fn the_probe_plot_shows_every_seed() {
    use crate::read::ProbeTrack;
    use crate::stats::ConditionReport;
    let track = |v: f64| ProbeTrack {
        probe: "icl".into(),
        metric: "accuracy".into(),
        points: vec![(0, 0.5), (10, v)],
    };
    let seeds = vec![vec![track(0.6)], vec![track(0.9)], vec![track(0.75)]];
    let report = Report {
        scenario: "demo".into(),
        metrics: Vec::new(),
        conditions: vec![ConditionReport {
            name: "bursty".into(),
            from: None,
            runs: Vec::new(),
            values: Vec::new(),
            stats: Vec::new(),
            curve: Vec::new(),
            genes: Vec::new(),
            probes: crate::stats::mean_tracks(&seeds),
            probe_seeds: seeds,
            unlearned: Vec::new(),
        }],
        effects: Vec::new(),
        learned: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    let written = crate::plot::report_plots(&report, tmp.path()).unwrap();
    assert_eq!(written.len(), 1);
    let svg = std::fs::read_to_string(&written[0]).unwrap();
    let faint = svg
        .lines()
        .filter(|l| l.contains("<polyline") && l.contains("opacity=\"0.3"))
        .count();
    assert_eq!(faint, 3, "{svg}");
    assert!(report.conditions[0].probes[0].points[1].1 == 0.75);
}

/// `--learned`: runs that do not meet the criterion (or have no value) are
/// listed apart and counted in no statistic, no effect and no curve.
#[test]
fn runs_that_did_not_learn_are_left_out_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    write_example(tmp.path());
    // fitness: Connectome 1, 2, 3; Shuffled 4, 6, 8 (seed 4 not run).
    let learned: crate::Learned = "fitness>=2".parse().unwrap();
    let r = Report::read(tmp.path(), None, Some(&learned)).unwrap();
    let (a, b) = (&r.conditions[0], &r.conditions[1]);
    assert_eq!(a.unlearned, [(1, Some(1.0))]);
    assert!(b.unlearned.is_empty());
    assert_eq!(a.values[0], [None, Some(2.0), Some(3.0)]);
    // Every metric leaves seed 1 out, not only the criterion's.
    assert_eq!(a.values[2], [None, Some(2.5), Some(3.0)]);
    check_stat(a.stats[0], 2.5, 0.5, 2);
    let p = r.effects[0][0].unwrap().paired.unwrap();
    assert_eq!((p.n, p.higher), (2, 2));
    assert!(close(p.mean, 4.5), "{p:?}");
    // The curve: seed 1's (step 0: 4) is left out of the mean (5, 6).
    assert!(close(a.curve[0].mean, 5.5) && a.curve[0].n == 2);
    let text = r.text(tmp.path());
    assert!(
        text.contains("seed 1: conditions/Connectome/seed-1 (did not learn: fitness = 1.000)")
            && text.contains("runs counted: those with fitness>=2; 1 that did not learn"),
        "{text}"
    );
    r.write(tmp.path()).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join(REPORT_JSON)).unwrap())
            .unwrap();
    assert_eq!(json["learned"], "fitness>=2");
    let seeds = std::fs::read_to_string(tmp.path().join(crate::SEEDS_CSV)).unwrap();
    assert!(
        seeds.contains("\nConnectome,1,fitness,1,false\n"),
        "{seeds}"
    );
    assert!(!seeds.contains("\nConnectome,1,final_heldout"), "{seeds}");
    assert_eq!(
        json["conditions"][0]["unlearned"],
        json!([{"seed": 1, "value": 1.0}])
    );
    let e = Report::read(tmp.path(), None, Some(&"nope>=1".parse().unwrap())).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--learned: no metric `nope` (metrics: fitness, "),
        "{e}"
    );
}
