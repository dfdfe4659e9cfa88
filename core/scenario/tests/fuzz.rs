//! Scenario fuzzing (issue 10): thousands of mutated scenarios, from a fixed
//! seed, go through loading and validation in process, the path `lineage
//! validate` takes. None may panic or abort (a small memory limit keeps
//! every mutation from allocating much), and every error must be located.
//!
//! **Located** means, for a [`ScenarioError::Invalid`] diagnostic:
//! - its `file` is the fuzzed file (`fuzz.toml`) or a file it extends that
//!   exists;
//! - `1 <= line <= lines + 1` of that file and `column >= 1`, and
//!   `source_line` is that line's text (empty past the end);
//! - its `field` names the field at fault, a non-empty dotted path, except
//!   for TOML syntax errors (`invalid TOML: ...`), located by line and
//!   column alone;
//! - its message is not empty and does not end with a period.
//!
//! [`ScenarioError::Io`] (a file that cannot be read) is never located in
//! the scenario and must not happen: the fuzzed text is given in memory,
//! and a missing `extends` is a diagnostic at `extends`.
//!
//! Mutations, one to three per case: extreme numbers (0, -1, huge,
//! `i64::MAX`, `1e308`, `nan`, `inf`, fractions where integers go), wrong
//! types, deleted, duplicated, swapped and truncated lines, a truncated
//! file, odd strings (empty, unicode, control characters, very long,
//! unknown names), swapped sections and inserted keys with sizes that
//! cannot fit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use lineage_scenario::{Overrides, ScenarioError};

/// Cases per run.
const CASES: usize = 1200;
/// The fixed seed of the mutation stream.
const SEED: u64 = 0x5eed_f022_2026_0010;
/// The memory a fuzzed scenario may claim: small, so no mutation makes
/// validation allocate much (the shipped scenarios need less).
const LIMIT: u64 = 256 << 20;

/// SplitMix64: a tiny, fixed random stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "3",
    "7",
    "0.5",
    "1.5",
    "-0.0",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "4294967295",
    "4294967296",
    "4000000000",
    "65536",
    "1048577",
    "16777217",
    "2147483649",
    "100000000",
    "1099511627777",
    "[0, 0]",
    "[5, 2]",
    "[1, 18446744073709551615]",
    "[1, 16777217]",
    "[]",
    "[0.5]",
    "[1e308, -1e308]",
];

const WRONG_TYPES: &[&str] = &[
    "\"7\"",
    "true",
    "[]",
    "{}",
    "[1, 2]",
    "[[1], [2, 3]]",
    "{ a = 1 }",
    "{ kind = \"mlp\" }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "[\"a\", 1]",
];

const STRINGS: &[&str] = &[
    "\"\"",
    "\" \"",
    "\"bogus\"",
    "\"Ünïcødé 🦀 名前\"",
    "\"\\u0000\"",
    "\"a\\tb\\nc\"",
    "\"../../etc/passwd\"",
    "\"/\"",
    "\"builtin:\"",
    "\":\"",
    "\"a:b\"",
    "\"builtin:onemax\"",
    "\"onemax\"",
    "\"heldout_loss\"",
    "\"nsga2\"",
    "\"mu_plus_lambda\"",
    "\"truncation\"",
    "\"uniform\"",
    "\"lamarckian\"",
    "\"prune\"",
    "\"transformer\"",
    "\"gru\"",
    "\"lstm\"",
    "\"rnn\"",
    "\"hmm\"",
    "\"text\"",
    "\"sinusoids\"",
    "\"decision\"",
    "\"delayed_match\"",
    "\"icl\"",
    "\"random_offset\"",
    "\"linear_teacher\"",
    "\"task\"",
    "\"teacher\"",
    "\"cuda\"",
    "\"kaiming\"",
    "\"inverse-sqrt\"",
    "\"shuffle\"",
    "\"random\"",
    "\"invalidate\"",
];

/// Lines inserted whole: keys with sizes that cannot fit, tables, and
/// references to things that may not exist.
const INSERTS: &[&str] = &[
    "population = 100000000",
    "generations = 4294967295",
    "seed = -1",
    "checkpoint_every = 0",
    "extends = \"onemax.toml\"",
    "extends = \"missing.toml\"",
    "extends = \"fuzz.toml\"",
    "extends = 3",
    "[genome]\nbits = 2147483648",
    "[genome]\ngenes = [{ name = \"weights\", count = 16777216, min = -1, max = 1 }]",
    "[genome]\ngenes = [{ name = \"steps\", min = 1, max = 1e300 }]",
    "[lifetime]\nbudget = 1099511627776\nsteps = 1\nbatch = 1\nenvironment = { kind = \"sinusoids\" }\nmodel = { kind = \"mlp\", hidden = [8] }",
    "[lifetime]\nbudget = 8\nsteps = 1073741824\nbatch = 16777216\nenvironment = { kind = \"sinusoids\", heldout = 1099511627776 }\nmodel = { kind = \"gru\", hidden = 1048576 }",
    "[lifetime]\nbudget = 64\nsteps = 4\nbatch = 4\nenvironment = { kind = \"hmm\", tokens = 16777216, states = 16777216, context = 8, corpus = 1000, heldout = 4 }\nmodel = { kind = \"transformer\", d_model = 1048576, heads = 1, layers = 1024 }",
    "[lifetime]\nbudget = 64\nsteps = 4\nbatch = 4\nenvironment = { kind = \"icl\", classes = 64, dim = 1048576, labels = 4, pairs = 2, burstiness = 2, positions = \"random_offset\", max_pairs = 1048576, heldout = 4 }\nmodel = { kind = \"transformer\", d_model = 1048576, heads = 1, layers = 2, d_ff = 0, layer_norm = false, embed = false, positions = false, attn_out = false, attn_scale = false, head = [1048576, 0, 1048577] }",
    "[lifetime]\nbudget = 64\nsteps = 4\nbatch = 4\nenvironment = { kind = \"hmm\", states = 1, successors = [0, 0], emissions = [0, 99], context = 1048576 }\nmodel = { kind = \"mlp\", hidden = [1], embedding = 1048576, context = 1048576 }",
    "[lifetime]\nbudget = 64\nsteps = 4\nbatch = 4\nenvironment = { kind = \"teacher\", inputs = 1048576, hidden = 1048576, outputs = 1048576 }\nmodel = { kind = \"linear2\", hidden = 1048576 }",
    "[lifetime]\nbudget = 64\nsteps = 4\nbatch = 4\nenvironment = { kind = \"gaussian_clusters\", classes = 1048576, dim = 1048576, spread = 1.0 }\nmodel = { kind = \"mlp\", hidden = [1048576, 1048576, 1048576] }",
    "[lifetime]\nbudget = 64\nsteps = 4\nbatch = 4\nenvironment = { kind = \"text\", path = \"/dev/zero\", context = 8 }\nmodel = { kind = \"rnn\", hidden = 8 }",
    "[lifetime]\nbudget = 64\nsteps = 4\nbatch = 4\nenvironment = { kind = \"text\", path = \"data\", context = 8 }\nmodel = { kind = \"rnn\", hidden = 8 }",
    "[lifetime.develop]\nrank = 1048576\nalign = []",
    "[lifetime.develop]\nconnectome = true",
    "[lifetime.develop]\nalignment = nan\nalign = \"task\"\nrank = 1",
    "[[lifetime.develop.matrix]]\nname = \"w_rec\"\ndale = 1e-300\nalignment = 2.0",
    "[[lifetime.develop.matrix]]\nname = \"layers.0.weight\"\ndale = 0.5\ndensity = 0.5",
    "[[lifetime.develop.matrix]]\nname = \"layers.0.weight\"\nrank = 0",
    "[lifetime.rewire]\nedges = 18446744073709551615",
    "[[environment]]\nat_generation = 1\nset = { population = 100000000 }",
    "[[environment]]\nat_generation = 1\nset = { lifetime = { environment = { heldout = 4000000000 } } }",
    "[[environment]]\nat_generation = 0\nset = {}",
    "[[environment]]\nat_generation = 2\nset = { seed = 3 }",
    "[[conditions]]\nname = \"a\"\nseeds = [1, 2, 1]",
    "[[conditions]]\nname = \"\"",
    "[[conditions]]\nname = \"b\"\nfrom = \"b\"",
    "[[conditions]]\nname = \"c\"\nset = { population = 100000000 }",
    "[[conditions]]\nname = \"d\"\nset = { lifetime = { environment = { heldout = 4000000000 } } }",
    "[[conditions]]\nname = \"e\"\nconnectome = { mask = \"shuffle\" }",
    "[plugins.p]\nlibrary = \"\"",
    "[plugins.builtin]\nlibrary = \"x\"",
    "[plugins.p]\nlibrary = \"./nothing.so\"\non_error = \"explode\"",
    "[evaluate]\nsuites = [\"p:x\", \"p:x\", \"nope\"]",
    "[fitness]\nfunction = \"p:\"\nmetrics = [\"a\", \"a\"]",
    "[stop]\ntarget_fitness = nan\nstagnation = 0",
    "[selection]\nmethod = \"mu_comma_lambda\"\nmu = 18446744073709551615",
    "[lifetime]\nbudget = 64\nsteps = 4\nbatch = 4\nenvironment = { kind = \"hmm\", tokens = 1, states = 1, successors = [5, 2], emissions = [3, 1], context = 1, corpus = 2, heldout = 1 }\nmodel = { kind = \"gru\", hidden = 1 }",
    "[lifetime]\nbudget = 1\nsteps = 1\nbatch = 1\nenvironment = { kind = \"hmm\", tokens = 2, states = 2, successors = [1, 1], emissions = [1, 1], zipf = 0, concentration = 1e-300, context = 1, corpus = 3, heldout = 1 }\nmodel = { kind = \"transformer\", d_model = 1, heads = 1, layers = 1 }",
    "[lifetime]\nbudget = 1\nsteps = 0\nbatch = 1\nenvironment = { kind = \"text\", path = \"data/shakespeare.txt\", context = 1, validation = 1e-320, heldout = 1 }\nmodel = { kind = \"mlp\", embedding = 1, context = 1 }",
    "[lifetime]\nbudget = 1\nsteps = 0\nbatch = 1\nenvironment = { kind = \"gaussian_clusters\", classes = 2, dim = 1, spread = 1e-45, heldout = 1 }\nmodel = { kind = \"rnn\", hidden = 1, alpha = 1e-45 }\ndevelop = { rank = 1, align = [0.0] }",
    "[lifetime]\nbudget = 1\nsteps = 1\nbatch = 1\ninheritance = \"prune\"\nprune = { fraction = 0.999999, reset = 1e-45 }\nenvironment = { kind = \"sinusoids\", heldout = 1 }\nmodel = { kind = \"mlp\", hidden = [1] }\ndevelop = { matrix = [{ name = \"layers.1.weight\", rank = 1, align = [1.0] }] }",
];

/// Scenarios to mutate: every shipped one, and a few that reach the
/// checks the shipped ones do not.
/// True when a scenario names an environment a plugin supplies (an
/// `environment` table with a `plugin` key, anywhere).
fn needs_a_plugin_built(text: &str) -> bool {
    fn walk(v: &toml::Value) -> bool {
        match v {
            toml::Value::Table(t) => t.iter().any(|(k, v)| {
                (k == "environment" && v.as_table().is_some_and(|e| e.contains_key("plugin")))
                    || walk(v)
            }),
            toml::Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    text.parse::<toml::Table>()
        .map(|t| walk(&toml::Value::Table(t)))
        .unwrap_or(false)
}

fn corpus(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("the scenarios folder")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "toml").then_some(path)
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a shipped scenario");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        // A scenario whose environment a plugin supplies loads the plugin's
        // library to validate; the example plugins' own tests cover them.
        .filter(|(_, text)| !needs_a_plugin_built(text))
        .collect();
    out.sort();
    assert!(out.len() >= 8, "too few shipped scenarios: {}", out.len());
    let extra = [
        (
            "hmm-transformer",
            r#"name = "t"
generations = 3
population = 4
[genome]
genes = [{ name = "lr", min = 1e-4, max = 1.0, log = true }]
[fitness]
function = "improvement"
[lifetime]
budget = 256
steps = 4
batch = 4
eval_every = 2
environment = { kind = "hmm", tokens = 16, states = 8, successors = [2, 3], emissions = [2, 4], context = 8, corpus = 2000, heldout = 8, seed = 1 }
model = { kind = "transformer", d_model = 16, heads = 2, layers = 1 }
optimizer = { method = "adamw", schedule = "warmup-hold-cooldown", warmup = 1, cooldown = 1 }
"#,
        ),
        (
            "teacher-rnn",
            r#"name = "r"
generations = 3
population = 6
[genome]
genes = [{ name = "gain", min = 0.1, max = 2.0 }]
[fitness]
function = "heldout_auc"
[selection]
method = "mu_plus_lambda"
mu = 3
[lifetime]
budget = 32
steps = 4
batch = 8
inheritance = "lamarckian"
lamarckian_noise = 0.01
environment = { kind = "teacher", inputs = 4, hidden = 8, outputs = 2, heldout = 16 }
model = { kind = "mlp", hidden = [8, 8], activation = "tanh" }
[[environment]]
at_generation = 2
set = { population = 8, mutation = { sigma = 0.2 } }
"#,
        ),
        (
            "plugins-conditions",
            r#"name = "p"
generations = 4
population = 8
[genome]
bits = 32
[plugins.suite]
library = "./libmissing.so"
on_error = "invalidate"
config = { a = 1, b = { c = "x" } }
[fitness]
function = "suite:score"
metrics = ["a", "b"]
[evaluate]
suites = ["suite:probe"]
[crossover]
method = "uniform"
rate = 0.5
[[conditions]]
name = "base"
seeds = [1, 2]
[[conditions]]
name = "bigger"
seeds = [3]
set = { population = 16, stop = { stagnation = 2 } }
"#,
        ),
        (
            "extends-onemax",
            "extends = \"onemax.toml\"\nname = \"child\"\nseed = 5\n[mutation]\nbit_rate = 0.01\n",
        ),
    ];
    out.extend(
        extra
            .iter()
            .map(|(n, t)| (format!("{n}.toml"), (*t).to_owned())),
    );
    out
}

/// Copies the shipped scenarios and their data into `to`, with the
/// generated languages' corpora shortened from a million tokens (which
/// take a second to draw at the test profile's optimisation) to 20,000 and
/// data files to 256 KiB: the checks are the same, and a thousand cases
/// run in seconds.
fn copy_shrunk(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("the scenarios folder") {
        let path = entry.expect("a folder entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            std::fs::create_dir_all(&target).expect("a data folder");
            copy_shrunk(&path, &target);
        } else if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("a shipped scenario");
            // Large data budgets (the ICL scenarios' 512,000 sequences, 1.6
            // GiB; Reddy's 384,000 sequences of 128-wide tokens, 3.1 GiB;
            // icl-evolve's population of 25,600 each), and the ICL worlds'
            // held-out and probe sets, cut to fit the memory limit; the
            // structure is what counts.
            let text = text
                .replace("corpus = 1000000", "corpus = 20000")
                .replace("budget = 512000", "budget = 16000")
                .replace("budget = 384000", "budget = 8000")
                .replace(
                    "probe_sequences = 500, heldout = 500",
                    "probe_sequences = 50, heldout = 50",
                )
                .replace("budget = 25600", "budget = 3200");
            std::fs::write(&target, text).expect("a scenario copy");
        } else {
            // Data files (Shakespeare, 5 MB) cut to 256 KiB, read as fast.
            let mut bytes = std::fs::read(&path).expect("a data file");
            bytes.truncate(256 << 10);
            std::fs::write(&target, bytes).expect("a data file copy");
        }
    }
}

/// Spans of the values on a line: after each `=`, a whole array, or a
/// scalar up to the next `,` or `}`; an inline table is entered, so that
/// its own values are spans.
fn value_spans(line: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for (i, _) in line.match_indices('=') {
        let rest = &line[i + 1..];
        let lead = rest.len() - rest.trim_start().len();
        let start = i + 1 + lead;
        let rest = &line[start..];
        let len = if rest.starts_with('{') || rest.is_empty() {
            continue;
        } else if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => end + 1,
                None => continue,
            }
        } else {
            rest.find([',', '}']).unwrap_or(rest.len())
        };
        spans.push((start, start + len));
    }
    spans
}

/// A char boundary of `s` at or before `at`.
fn boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    match rng.below(16) {
        // A value replaced: numbers, wrong types, odd strings.
        0..=8 => {
            let with_values: Vec<usize> = (0..n)
                .filter(|&i| !value_spans(&lines[i]).is_empty())
                .collect();
            if with_values.is_empty() {
                return text.to_owned();
            }
            let i = *rng.pick(&with_values);
            let spans = value_spans(&lines[i]);
            let (a, b) = *rng.pick(&spans);
            let new = match rng.below(4) {
                0 | 1 => rng.pick(NUMBERS).to_string(),
                2 => rng.pick(WRONG_TYPES).to_string(),
                _ => match rng.below(6) {
                    0 => format!("\"{}\"", "x".repeat(10_000)),
                    1 => format!("\"{}\"", "🦀".repeat(300)),
                    _ => rng.pick(STRINGS).to_string(),
                },
            };
            lines[i] = format!("{}{}{}", &lines[i][..a], new, &lines[i][b..]);
        }
        9 => {
            lines.remove(rng.below(n));
        }
        10 => {
            let i = rng.below(n);
            let line = lines[i].clone();
            lines.insert(i, line);
        }
        11 => {
            let i = rng.below(n);
            let cut = boundary(&lines[i], rng.below(lines[i].len() + 1));
            lines[i].truncate(cut);
        }
        12 => {
            let (i, j) = (rng.below(n), rng.below(n));
            lines.swap(i, j);
        }
        // Two sections (from a header to the next) swapped.
        13 => {
            let headers: Vec<usize> = (0..n).filter(|&i| lines[i].starts_with('[')).collect();
            if headers.len() >= 2 {
                let k = rng.below(headers.len() - 1);
                let (a, b) = (headers[k], headers[k + 1]);
                let end = headers.get(k + 2).copied().unwrap_or(n);
                let first: Vec<String> = lines[a..b].to_vec();
                let second: Vec<String> = lines[b..end].to_vec();
                lines.splice(a..end, second.into_iter().chain(first));
            }
        }
        14 => {
            // Tables go at the end half the time, where what follows them
            // does not become theirs.
            let insert = rng.pick(INSERTS).to_string();
            let i = if insert.starts_with('[') && rng.below(2) == 0 {
                n
            } else {
                rng.below(n + 1)
            };
            lines.insert(i, insert);
        }
        // The file cut short at any byte.
        _ => {
            let cut = boundary(text, rng.below(text.len() + 1));
            return text[..cut].to_owned();
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Why `err` is not located, if it is not (see the module docs).
fn unlocated(err: &ScenarioError, text: &str, dir: &Path) -> Option<String> {
    let d = match err {
        ScenarioError::Invalid(d) => d,
        other => return Some(format!("not a located diagnostic: {other}")),
    };
    let source = if d.file == "fuzz.toml" {
        text.to_owned()
    } else {
        let path = PathBuf::from(&d.file);
        let path = if path.is_absolute() {
            path
        } else {
            dir.join(path)
        };
        match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(_) => return Some(format!("names no readable file: {:?}", d.file)),
        }
    };
    let lines: Vec<&str> = source.lines().collect();
    if d.line == 0 || d.line > lines.len() + 1 || d.column == 0 {
        return Some(format!(
            "line {} column {} outside the file ({} lines)",
            d.line,
            d.column,
            lines.len()
        ));
    }
    let expected = lines.get(d.line - 1).copied().unwrap_or("");
    if d.source_line != expected {
        return Some(format!(
            "source line {:?} is not line {} ({expected:?})",
            d.source_line, d.line
        ));
    }
    if d.field.is_empty() && !d.message.starts_with("invalid TOML") {
        return Some("no field named".into());
    }
    if d.message.trim().is_empty() || d.message.ends_with('.') {
        return Some(format!(
            "message empty or ends with a period: {:?}",
            d.message
        ));
    }
    None
}

#[test]
fn mutated_scenarios_never_panic_and_every_error_is_located() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dir = tmp.path().canonicalize().expect("the temporary folder");
    copy_shrunk(&shipped, &dir);
    let corpus = corpus(&dir);
    let overrides = Overrides {
        memory_limit: Some(LIMIT),
        ..Overrides::default()
    };
    // The unmutated corpus is valid, so that mutations start from deep
    // inside the checks.
    for (name, text) in &corpus {
        if name.starts_with("plugins-") {
            continue;
        }
        if let Err(e) = lineage_scenario::from_str(text, "fuzz.toml", &dir, &overrides) {
            panic!("{name} should be valid under {LIMIT} bytes:\n{e}");
        }
    }
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // A longer campaign from another seed: LINEAGE_FUZZ_CASES=100000
    // LINEAGE_FUZZ_SEED=7 cargo test -p lineage-scenario --test fuzz.
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = number("LINEAGE_FUZZ_CASES").map_or(CASES, |n| n as usize);
    let mut rng = Rng(number("LINEAGE_FUZZ_SEED").unwrap_or(SEED));
    let mut failures = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..cases {
        let (name, base) = rng.pick(&corpus);
        let mut text = base.clone();
        for _ in 0..1 + rng.below(3) {
            text = mutate(&mut rng, &text);
        }
        if let Ok(trace) = std::env::var("LINEAGE_FUZZ_TRACE") {
            let _ = std::fs::write(&trace, format!("# case {case}: {name}\n{text}"));
        }
        let result = catch_unwind(AssertUnwindSafe(|| {
            lineage_scenario::from_str(&text, "fuzz.toml", &dir, &overrides)
        }));
        match result {
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!(
                    "case {case} (from {name}) panicked: {what}\n{text}"
                ));
            }
            Ok(Ok(_)) => valid += 1,
            Ok(Err(e)) => {
                invalid += 1;
                if let (true, ScenarioError::Invalid(d)) =
                    (std::env::var("LINEAGE_FUZZ_SHOW").is_ok(), &e)
                {
                    // LINEAGE_FUZZ_SHOW=1: every refusal, to judge messages.
                    eprintln!("SHOW {} | {}", d.field, d.message);
                }
                if let Some(why) = unlocated(&e, &text, &dir) {
                    failures.push(format!("case {case} (from {name}): {why}\n{e}\n{text}"));
                }
            }
        }
    }
    std::panic::set_hook(quiet);
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed; the first:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n-----\n")
    );
    // Both outcomes are exercised: mutations are neither all harmless nor
    // all fatal.
    eprintln!("{cases} cases: {valid} valid, {invalid} refused");
    assert!(
        valid >= cases / 20 && invalid >= cases / 2,
        "valid {valid}, invalid {invalid}"
    );
}
