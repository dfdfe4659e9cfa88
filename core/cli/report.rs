//! `lineage inspect` and `lineage report`: the command line's side of
//! `lineage-report`, which reads the records, computes and draws. Here its
//! errors get their exit codes (2: damaged or missing records, a bad
//! `--baseline`; 1: a report file that cannot be written) and what it
//! wrote is listed.

use std::path::Path;

use lineage_report::{Learned, Report, ReportError};

use crate::Failure;

impl From<ReportError> for Failure {
    fn from(e: ReportError) -> Failure {
        let message = match &e {
            ReportError::NoSuchCondition { .. } => format!("--baseline: {e}"),
            _ => e.to_string(),
        };
        Failure {
            code: if e.is_bad_input() { 2 } else { 1 },
            message,
        }
    }
}

/// Refuses the root of an island run, naming the islands' folders.
fn not_islands(dir: &Path, verb: &str) -> Result<(), Failure> {
    if lineage_engine::islands::is_islands_dir(dir) {
        return Err(Failure::bad_input(format!(
            "{} is an island run: `lineage {verb} {}/{}` shows one island ({} holds who migrated where)",
            dir.display(),
            dir.display(),
            "islands/island-<k>",
            lineage_engine::islands::MIGRATIONS
        )));
    }
    Ok(())
}

/// `lineage inspect RUN_DIR`: the run's summary table. An experiment with
/// conditions is pointed at `report` and at its runs, an island run at its
/// islands.
pub fn inspect(dir: &Path) -> Result<(), Failure> {
    not_islands(dir, "inspect")?;
    if lineage_report::is_conditions_run(dir) {
        return Err(Failure::bad_input(format!(
            "{} is an experiment with conditions: `lineage report {}` compares them; `lineage inspect {}/conditions/<name>/seed-<k>` shows one run",
            dir.display(),
            dir.display(),
            dir.display()
        )));
    }
    print!("{}", lineage_report::summary(dir)?);
    Ok(())
}

/// `lineage report RUN_DIR [--baseline NAME] [--learned METRIC>=VALUE]`:
/// for one run, its summary and a plot per objective; for an experiment
/// with conditions, the comparison over seeds (tables, `report.json`,
/// `report.csv`, plots), with effects against `baseline` (default: the
/// first condition), counting only the runs that meet `learned`.
pub fn report(
    dir: &Path,
    baseline: Option<&str>,
    learned: Option<&Learned>,
) -> Result<(), Failure> {
    not_islands(dir, "report")?;
    if lineage_report::is_conditions_run(dir) {
        let report = Report::read(dir, baseline, learned)?;
        print!("{}", report.text(dir));
        for path in report.write(dir)? {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    if baseline.is_some() || learned.is_some() {
        return Err(Failure::bad_input(format!(
            "--{} compares conditions, but this run has none",
            if baseline.is_some() {
                "baseline"
            } else {
                "learned"
            }
        )));
    }
    print!("{}", lineage_report::summary(dir)?);
    for path in lineage_report::run_plots(dir)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lineage_engine::conditions::{Index, IndexEntry};
    use lineage_engine::manifest::Manifest;
    use lineage_engine::plugins::PluginRecord;
    use lineage_engine::recorder::files;
    use lineage_engine::resources::StopReason;
    use lineage_report::read;

    /// `lineage-report` reads the records without the engine: its file
    /// names and its view of `manifest.json` and `conditions.json` must
    /// match what the engine writes.
    #[test]
    fn the_report_reads_what_the_engine_writes() {
        assert_eq!(read::MANIFEST, lineage_engine::manifest::MANIFEST);
        assert_eq!(read::CONDITIONS, lineage_engine::conditions::INDEX);
        assert_eq!(read::GENERATIONS, files::GENERATIONS);
        assert_eq!(read::ORGANISMS, files::ORGANISMS);
        assert_eq!(read::CURVES, files::CURVES);
        assert_eq!(read::METRICS, files::METRICS);

        let tmp = tempfile::tempdir().unwrap();
        // Built through the engine's own serde (fields it defaults may be
        // left out), then written by the engine.
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "lineage_version": "9.9.9",
            "git_commit": "abc",
            "stream_derivation": 1,
            "scenario": "demo",
            "scenario_sha256": "f".repeat(64),
            "seed": u64::MAX,
            "threads": 3,
            "host": "here",
            "started": "2026-01-01T00:00:00Z",
            "finished": null,
            "generations_completed": 7,
            "stop_reason": serde_json::to_value(StopReason::TargetReached).unwrap(),
            "sessions": [],
            "plugins": [serde_json::to_value(PluginRecord {
                alias: "mc".into(),
                name: "suite".into(),
                version: "1.0".into(),
                abi_version: 2,
                path: "lib/x.so".into(),
                sha256: "0".repeat(64),
                isolation: "process".into(),
                replaced: Vec::new(),
            })
            .unwrap()],
        }))
        .unwrap();
        manifest.write(tmp.path()).unwrap();
        let read = read::Manifest::read(tmp.path()).unwrap();
        assert_eq!(
            (
                read.lineage_version.as_str(),
                read.git_commit.as_deref(),
                read.scenario.as_str(),
                read.seed,
                read.host.as_str(),
                read.finished.as_deref(),
            ),
            ("9.9.9", Some("abc"), "demo", u64::MAX, "here", None)
        );
        assert_eq!(read.scenario_sha256, manifest.scenario_sha256);
        assert_eq!(read.stop_reason().as_deref(), Some("target reached"));
        assert_eq!(
            (read.plugins[0].alias.as_str(), read.plugins[0].abi_version),
            ("mc", 2)
        );

        let index = Index {
            scenario: "demo".into(),
            conditions: vec![IndexEntry {
                name: "A".into(),
                from: Some("outer".into()),
                seeds: vec![1, 2],
                runs: vec!["conditions/A/seed-1".into(), "conditions/A/seed-2".into()],
            }],
        };
        let path = tmp.path().join(read::CONDITIONS);
        std::fs::write(&path, serde_json::to_string(&index).unwrap()).unwrap();
        let read = read::Index::read(tmp.path()).unwrap();
        assert_eq!(read.scenario, "demo");
        assert_eq!(read.conditions[0].from.as_deref(), Some("outer"));
        assert_eq!(read.conditions[0].runs, index.conditions[0].runs);
        assert_eq!(read.conditions[0].seeds, [1, 2]);
    }
}
