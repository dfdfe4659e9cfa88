//! Damaged records (issue 10, bug 2): a `generations.csv` cut mid-row by a
//! crash or edited by hand, a field that is not a number, a missing column.
//! `inspect` and `report` answer with exit code 2, the file, the line and
//! what is wrong, never with a panic.

mod common;

use std::path::Path;

use common::{lineage, lineage_ok, s, write_scenario};

/// A small genetic algorithm: a few generations of a few organisms.
const SCENARIO: &str = r#"
name = "records-test"
seed = 3
generations = 3
population = 6

[genome]
bits = 16

[fitness]
function = "onemax"
"#;

/// The same, as an experiment with two conditions of two seeds.
const CONDITIONS: &str = r#"
[[conditions]]
name = "A"
seeds = [1, 2]

[[conditions]]
name = "B"
seeds = [1, 2]
set = { mutation = { bit_rate = 0.25 } }
"#;

/// How `lineage ARGS` must fail: exit code 2, no panic, and stderr naming
/// `file` (a path ending) and `what` (the line and the fault).
fn fails_naming(args: &[&str], file: &str, what: &str) {
    let out = lineage(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "lineage {args:?} panicked:\n{err}"
    );
    assert_eq!(out.status.code(), Some(2), "lineage {args:?}:\n{err}");
    assert!(
        err.contains(&format!("{file}, {what}")),
        "lineage {args:?}: expected `{file}, {what}` in:\n{err}"
    );
}

/// `generations.csv` of `dir` with its text changed by `edit`.
fn damage(dir: &Path, edit: impl Fn(&str) -> String) {
    let path = dir.join("generations.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let damaged = edit(&text);
    assert_ne!(damaged, text, "the edit changed nothing");
    std::fs::write(&path, damaged).unwrap();
}

/// The file cut in the middle of its third row, as a crash would leave it.
fn cut_mid_row(text: &str) -> String {
    let third = text.match_indices('\n').nth(2).unwrap().0;
    text[..third + 6].to_owned()
}

/// The last row's `onemax_best` replaced by a word.
fn not_a_number(text: &str) -> String {
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let k = header.iter().position(|h| *h == "onemax_best").unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = lines.last_mut().unwrap();
    let mut fields: Vec<&str> = last.split(',').collect();
    fields[k] = "lots";
    *last = fields.join(",");
    lines.join("\n") + "\n"
}

/// The `onemax_worst` column taken out of the header and every row.
fn without_column(text: &str) -> String {
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let k = header.iter().position(|h| *h == "onemax_worst").unwrap();
    text.lines()
        .map(|l| {
            let mut fields: Vec<&str> = l.split(',').collect();
            fields.remove(k);
            fields.join(",") + "\n"
        })
        .collect()
}

#[test]
fn damaged_generations_of_a_run_are_named_not_panicked_on() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "r.toml", SCENARIO);
    let run = tmp.path().join("run");
    lineage_ok(&["run", s(&scenario), "--out", s(&run), "--quiet"]);
    let pristine = std::fs::read_to_string(run.join("generations.csv")).unwrap();
    let fields = pristine.lines().next().unwrap().split(',').count();
    let cases: [(fn(&str) -> String, String); 4] = [
        (
            cut_mid_row,
            format!("line 4: expected {fields} fields, found"),
        ),
        (
            not_a_number,
            "line 4: column `onemax_best`: `lots` is not a number".into(),
        ),
        (
            without_column,
            "line 1: the header has `onemax_best` but no `onemax_worst` column".into(),
        ),
        (
            |t| t.split_once('\n').unwrap().1.to_owned(),
            "line 1: the header has no `generation` column".into(),
        ),
    ];
    for (edit, what) in &cases {
        std::fs::write(run.join("generations.csv"), &pristine).unwrap();
        damage(&run, edit);
        for command in ["inspect", "report"] {
            fails_naming(&[command, s(&run)], "run/generations.csv", what);
        }
    }
}

#[test]
fn damaged_records_in_an_experiment_are_named_not_panicked_on() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!("{SCENARIO}{CONDITIONS}");
    let scenario = write_scenario(tmp.path(), "c.toml", &text);
    let root = tmp.path().join("exp");
    lineage_ok(&["run", s(&scenario), "--out", s(&root), "--quiet"]);
    lineage_ok(&["report", s(&root)]);
    let seed = root.join("conditions/B/seed-2");
    let pristine = std::fs::read_to_string(seed.join("generations.csv")).unwrap();
    let file = "conditions/B/seed-2/generations.csv";
    damage(&seed, cut_mid_row);
    fails_naming(&["report", s(&root)], file, "line 4: expected ");
    std::fs::write(seed.join("generations.csv"), &pristine).unwrap();
    damage(&seed, not_a_number);
    fails_naming(
        &["report", s(&root)],
        file,
        "line 4: column `onemax_best`: `lots` is not a number",
    );
    std::fs::write(seed.join("generations.csv"), &pristine).unwrap();
    // organisms.csv cut short in its last row.
    let organisms = seed.join("organisms.csv");
    let rows = std::fs::read_to_string(&organisms).unwrap();
    let lines = rows.lines().count();
    let cut = rows.trim_end().rsplit_once(',').unwrap().0;
    std::fs::write(&organisms, cut).unwrap();
    fails_naming(
        &["report", s(&root)],
        "conditions/B/seed-2/organisms.csv",
        &format!("line {lines}: expected "),
    );
}
