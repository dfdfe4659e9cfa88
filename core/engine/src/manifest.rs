//! `manifest.json`: what produced a run, where and when.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::checkpoint::write_synced;
use crate::error::EngineError;
use crate::resources::StopReason;

/// File name inside a run directory.
pub const MANIFEST: &str = "manifest.json";

/// The run's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Lineage's version.
    pub lineage_version: String,
    /// The git commit Lineage was built from, when known.
    pub git_commit: Option<String>,
    /// Version of the random-stream derivation.
    pub stream_derivation: u32,
    /// The scenario's name.
    pub scenario: String,
    /// SHA-256 of `scenario.toml`.
    pub scenario_sha256: String,
    /// The seed.
    pub seed: u64,
    /// Worker threads of the latest session (results do not depend on it).
    pub threads: usize,
    /// Host name of the machine.
    pub host: String,
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// When the last session ended, if it did.
    pub finished: Option<String>,
    /// Generations completed.
    pub generations_completed: u32,
    /// Why the run stopped early, if it did.
    pub stop_reason: Option<StopReason>,
    /// Each invocation that worked on the run (the first run, then resumes).
    pub sessions: Vec<Session>,
    /// The CPU features that chose code paths (AVX2/FMA kernels) on the
    /// machine of the latest session; see [`lineage_learn::cpu_features`].
    #[serde(default)]
    pub cpu_features: Vec<String>,
    /// The plugin libraries the run loaded: path and SHA-256.
    #[serde(default)]
    pub plugins: Vec<crate::plugins::PluginRecord>,
    /// The data files the run's environments read: path, size and SHA-256.
    /// A resume refuses a file whose SHA-256 changed.
    #[serde(default)]
    pub data_files: Vec<DataFileRecord>,
    /// The names of the genome's real genes, in order: what the values of
    /// `organisms.csv`'s `genome` column (`x=v1;v2;…`) are.
    #[serde(default)]
    pub genes: Vec<String>,
}

/// A data file as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFileRecord {
    /// Its path, as the scenario resolved it.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The SHA-256 of its bytes, hex.
    pub sha256: String,
}

impl From<lineage_env::DataFile> for DataFileRecord {
    fn from(f: lineage_env::DataFile) -> DataFileRecord {
        DataFileRecord {
            path: f.path,
            bytes: f.bytes,
            sha256: f.sha256,
        }
    }
}

/// One invocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// `run` or `resume`.
    pub command: String,
    /// Worker threads.
    pub threads: usize,
    /// First generation it ran.
    pub from_generation: u32,
    /// Started (UTC).
    pub started: String,
    /// Ended (UTC), if it did.
    pub finished: Option<String>,
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest, EngineError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(EngineError::io("cannot read", &path))?;
        serde_json::from_slice(&text).map_err(|e| EngineError::BadRunDir {
            path,
            message: format!("is not a Lineage manifest: {e}"),
        })
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), EngineError> {
        let path = dir.join(MANIFEST);
        let tmp = dir.join("manifest.json.tmp");
        let json = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        write_synced(&tmp, &json)?;
        std::fs::rename(&tmp, &path).map_err(EngineError::io("cannot write", &path))
    }
}

/// The git commit of this build, when known.
pub fn git_commit() -> Option<String> {
    option_env!("LINEAGE_GIT_COMMIT").map(str::to_owned)
}

/// This machine's host name.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The current UTC time as RFC 3339 (`2026-11-23T23:11:05Z`).
pub fn utc_now() -> String {
    let (date, time) = utc_parts(SystemTime::now());
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        date.0, date.1, date.2, time.0, time.1, time.2
    )
}

/// The current UTC time for directory names (`20261123T231105Z`).
pub fn utc_stamp() -> String {
    let (date, time) = utc_parts(SystemTime::now());
    format!(
        "{}{:02}{:02}T{:02}{:02}{:02}Z",
        date.0, date.1, date.2, time.0, time.1, time.2
    )
}

fn utc_parts(t: SystemTime) -> ((i64, u32, u32), (u64, u64, u64)) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    (
        civil_from_days(days),
        (rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (y, m, d).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
