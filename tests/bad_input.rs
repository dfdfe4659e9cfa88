//! Bad scenarios: each exits with code 2 and an error that names the file,
//! the line and the field, and none panics.

mod common;

use std::path::Path;

use common::*;

const BASE: &str = r#"name = "bad"
generations = 10
population = 20
[genome]
bits = 16
[fitness]
function = "onemax"
"#;

/// One malformed scenario: its text, the `file:line` the error must point
/// at, the field it must name, and words the message must contain.
struct Case {
    name: &'static str,
    text: String,
    line: usize,
    field: &'static str,
    says: &'static str,
}

fn case(
    name: &'static str,
    text: impl Into<String>,
    line: usize,
    field: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        text: text.into(),
        line,
        field,
        says,
    }
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn cases() -> Vec<Case> {
    vec![
        case("syntax", with("[selection\n"), 8, "", "invalid TOML"),
        case(
            "unknown-key",
            format!("populaton = 3\n{BASE}"),
            1,
            "populaton",
            "did you mean `population`",
        ),
        case(
            "unknown-nested-key",
            with("[selection]\ntournamnet_size = 3\n"),
            9,
            "selection.tournamnet_size",
            "did you mean `tournament_size`",
        ),
        case(
            "wrong-type",
            BASE.replace("population = 20", "population = \"twenty\""),
            3,
            "population",
            "expected a non-negative integer, found string",
        ),
        case(
            "negative-population",
            BASE.replace("population = 20", "population = -5"),
            3,
            "population",
            "found integer `-5`",
        ),
        case(
            "zero-population",
            BASE.replace("population = 20", "population = 0"),
            3,
            "population",
            "at least 1, found 0",
        ),
        case(
            "rate-above-one",
            with("[mutation]\nbit_rate = 1.5\n"),
            9,
            "mutation.bit_rate",
            "probability in [0, 1], found 1.5",
        ),
        case(
            "tournament-too-large",
            with("[selection]\ntournament_size = 50\n"),
            9,
            "selection.tournament_size",
            "found 50",
        ),
        case(
            "zero-generations",
            BASE.replace("generations = 10", "generations = 0"),
            2,
            "generations",
            "at least 1 generation",
        ),
        case(
            "unknown-fitness",
            BASE.replace("\"onemax\"", "\"onemx\""),
            7,
            "fitness.function",
            "did you mean `onemax`",
        ),
        case(
            "missing-extends",
            format!("extends = \"nowhere.toml\"\n{BASE}"),
            1,
            "extends",
            "cannot read extended scenario `nowhere.toml`",
        ),
        case(
            "missing-key",
            BASE.replace("generations = 10\n", ""),
            1,
            "generations",
            "missing required key `generations`",
        ),
        case(
            "unknown-selection",
            with("[selection]\nmethod = \"roulette\"\n"),
            9,
            "selection.method",
            "unknown selection method `roulette`",
        ),
        case(
            "elitism-too-large",
            with("[selection]\nelitism = 20\n"),
            9,
            "selection.elitism",
            "fewer elites than the population",
        ),
        case(
            "gene-bounds",
            with("[[genome.genes]]\nname = \"x\"\nmin = 1.0\nmax = 0.0\n")
                .replace("[genome]\nbits = 16\n", "")
                .replace("[[genome.genes]]", "[genome]\nbits = 16\n[[genome.genes]]"),
            11,
            "genome.genes[0].max",
            "min <= max",
        ),
        case(
            "log-gene-at-zero",
            BASE.replace(
                "bits = 16",
                "bits = 16\ngenes = [{ name = \"lr\", min = 0.0, max = 1.0, log = true }]",
            ),
            6,
            "genome.genes[0].min",
            "needs min > 0",
        ),
        case(
            "trap-block",
            BASE.replace("function = \"onemax\"", "function = \"trap\"\nk = 5"),
            7,
            "fitness.function",
            "multiple of k = 5",
        ),
        case(
            "environment-genome",
            with("[[environment]]\nat_generation = 3\nset = { genome = { bits = 8 } }\n"),
            10,
            "environment[0].set.genome",
            "cannot be changed",
        ),
        case(
            "environment-order",
            with(
                "[[environment]]\nat_generation = 5\nset = { population = 30 }\n[[environment]]\nat_generation = 4\nset = { population = 40 }\n",
            ),
            12,
            "environment[1].at_generation",
            "increasing order",
        ),
        case(
            "environment-bad-value",
            with("[[environment]]\nat_generation = 5\nset = { mutation = { bit_rate = -0.1 } }\n"),
            10,
            "environment[0].set.mutation.bit_rate",
            "found -0.1",
        ),
        case(
            "target-with-two-objectives",
            BASE.replace(
                "bits = 16",
                "genes = [{ name = \"x\", count = 3, min = 0.0, max = 1.0 }]",
            )
            .replace("onemax", "zdt1")
                + "[stop]\ntarget_fitness = 0.1\n",
            9,
            "stop.target_fitness",
            "single objective",
        ),
        case(
            "parameter-of-another-function",
            BASE.replace("function = \"onemax\"", "function = \"onemax\"\nk = 4"),
            8,
            "fitness.k",
            "not a parameter of `onemax`",
        ),
        case(
            "crossover-rate",
            with("[crossover]\nmethod = \"uniform\"\nrate = 2.0\n"),
            10,
            "crossover.rate",
            "found 2",
        ),
        case(
            "extends-not-a-string",
            format!("extends = 3\n{BASE}"),
            1,
            "extends",
            "expected a file name",
        ),
        case(
            "empty-name",
            BASE.replace("name = \"bad\"", "name = \"\""),
            1,
            "name",
            "non-empty name",
        ),
        case(
            "huge-population",
            BASE.replace("population = 20", "population = 10000000000"),
            3,
            "population",
            "at most 100000000",
        ),
        case(
            "huge-gene-count",
            BASE.replace(
                "bits = 16",
                "bits = 16\ngenes = [{ name = \"x\", count = 100000000, min = 0.0, max = 1.0 }]",
            ),
            6,
            "genome.genes[0].count",
            "at most 16777216 genes",
        ),
        case(
            "mu-missing",
            with("[selection]\nmethod = \"mu_plus_lambda\"\n"),
            8,
            "selection",
            "needs `mu`",
        ),
    ]
}

fn check(dir: &Path, case: &Case) {
    let file = write_scenario(dir, &format!("{}.toml", case.name), &case.text);
    for command in ["validate", "run"] {
        let out = lineage(
            &[command, s(&file), "--out", s(&dir.join("never")), "--quiet"]
                [..if command == "run" { 5 } else { 2 }],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let at = format!("{}.toml:{}:", case.name, case.line);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: `lineage {command}` should exit 2\n{err}",
            case.name
        );
        assert!(!err.contains("panicked"), "{}: panicked\n{err}", case.name);
        assert!(
            err.contains(&at),
            "{}: error should point at {at}\n{err}",
            case.name
        );
        assert!(
            err.contains(&format!("field `{}`", case.field)) || case.field.is_empty(),
            "{}: error should name field `{}`\n{err}",
            case.name,
            case.field
        );
        assert!(
            err.contains(case.says),
            "{}: error should say {:?}\n{err}",
            case.name,
            case.says
        );
    }
    assert!(
        !dir.join("never").exists(),
        "{}: a bad scenario must not create a run directory",
        case.name
    );
}

#[test]
fn malformed_scenarios_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = cases();
    assert!(cases.len() >= 15);
    for case in &cases {
        check(tmp.path(), case);
    }
}

#[test]
fn cyclic_extends_names_the_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    write_scenario(
        tmp.path(),
        "a.toml",
        &format!("extends = \"b.toml\"\n{BASE}"),
    );
    write_scenario(tmp.path(), "b.toml", "extends = \"a.toml\"\nseed = 3\n");
    let out = lineage(&["validate", s(&tmp.path().join("a.toml"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("b.toml:1:") && err.contains("field `extends`"),
        "{err}"
    );
    assert!(err.contains("cycle: a.toml -> b.toml -> a.toml"), "{err}");
}

#[test]
fn an_error_in_an_extended_file_points_into_that_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_scenario(
        tmp.path(),
        "base.toml",
        &BASE.replace("population = 20", "population = 0"),
    );
    let child = write_scenario(
        tmp.path(),
        "child.toml",
        "extends = \"base.toml\"\nseed = 9\n",
    );
    let out = lineage(&["validate", s(&child)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("base.toml:3:14") && err.contains("field `population`"),
        "{err}"
    );
}

#[test]
fn missing_scenario_file_and_bad_arguments_exit_2() {
    let out = lineage(&["run", "/nonexistent/scenario.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/scenario.toml") && err.contains("No such file"),
        "{err}"
    );
    let out = lineage(&["run", "--threads", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let out = lineage(&["inspect", "/nonexistent/run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// Issue 10, bug 3: `heldout = 4000000000` in `learning-rate.toml` aborted
/// `lineage validate` with a failed allocation. The memory estimate refuses
/// it first, naming the field and the estimate.
#[test]
fn a_size_that_cannot_fit_is_refused_with_its_field_and_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenario("learning-rate.toml"))
        .unwrap()
        .replace("heldout = 400,", "heldout = 4000000000,");
    assert!(text.contains("heldout = 4000000000"));
    let file = write_scenario(tmp.path(), "huge.toml", &text);
    // A limit below the estimate (about 138 GiB) on any machine.
    for args in [
        vec!["validate", s(&file), "--memory-limit", "64GiB"],
        vec!["validate", s(&file)],
        vec![
            "run",
            s(&file),
            "--out",
            s(&tmp.path().join("never")),
            "--memory-limit",
            "64GiB",
        ],
    ] {
        // Without a limit, the machine's memory decides: skip where the
        // run would fit (it would then really be built).
        if args.len() == 2 && lineage_scenario::available_memory().is_none_or(|m| m > 130 << 30) {
            continue;
        }
        let out = lineage(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{err}");
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation"),
            "{err}"
        );
        assert!(
            err.contains("field `lifetime.environment.heldout`"),
            "{err}"
        );
        // The line of the environment table in the file.
        let line = 1 + text
            .lines()
            .position(|l| l.contains("heldout = 4000000000"))
            .unwrap();
        assert!(err.contains(&format!("huge.toml:{line}:")), "{err}");
        assert!(err.contains("estimated peak memory 134.1 GiB"), "{err}");
    }
    assert!(!tmp.path().join("never").exists());
}

/// `--memory-limit` refuses a scenario that would otherwise be valid, on
/// `validate`, `run` and `resume`.
#[test]
fn memory_limit_refuses_a_scenario_that_fits_the_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let file = scenario("learning-rate.toml");
    let out = lineage(&["validate", s(&file), "--memory-limit", "64KiB"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("exceeds the memory limit (--memory-limit) (64.0 KiB)"),
        "{err}"
    );
    assert!(err.contains("learning-rate.toml:"), "{err}");
    let run = tmp.path().join("r");
    let out = lineage(&[
        "run",
        s(&file),
        "--out",
        s(&run),
        "--quiet",
        "--memory-limit",
        "64KiB",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!run.exists(), "a refused run must not create its folder");
    lineage_ok(&[
        "run",
        s(&file),
        "--out",
        s(&run),
        "--quiet",
        "--generations",
        "1",
    ]);
    let out = lineage(&["resume", s(&run), "--quiet", "--memory-limit", "64KiB"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--memory-limit"), "{err}");
    let out = lineage(&["validate", s(&file), "--memory-limit", "lots"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("expected a size such as 8GiB"), "{err}");
}

/// `lineage validate` prints the estimate of every scenario it accepts.
#[test]
fn validate_prints_the_memory_estimate() {
    for name in ["onemax.toml", "learning-rate.toml"] {
        let out = lineage_ok(&["validate", s(&scenario(name))]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("estimated peak memory: "))
            .unwrap_or_else(|| panic!("{name}: no estimate in\n{text}"));
        assert!(
            line.contains("(largest: ") && line.contains(" from "),
            "{line}"
        );
    }
    let out = lineage_ok(&["validate", s(&scenario("learning-rate.toml"))]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("from lifetime."), "{text}");
}

/// Issue 10, bug 5: `--seed` above 2^63 - 1 wrapped to a negative number.
#[test]
fn a_seed_above_i64_max_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = scenario("onemax.toml");
    let out = lineage(&[
        "run",
        s(&file),
        "--seed",
        "9223372036854775808",
        "--out",
        s(&tmp.path().join("r")),
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("-9223372036854775808"), "{err}");
    assert!(
        err.contains("expected a seed at most 9223372036854775807, found 9223372036854775808"),
        "{err}"
    );
    assert!(err.contains("--seed"), "{err}");
    assert!(!tmp.path().join("r").exists());
}
