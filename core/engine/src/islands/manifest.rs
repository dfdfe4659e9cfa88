//! `manifest.json` at an island run's root: what ran the archipelago, on
//! how many processes and hosts, and each session (run, resume) in turn.

use super::*;

/// `manifest.json` at an island run's root, written by process 0: what
/// ran the archipelago, on how many processes, on which hosts and when.
/// Each island's folder has its own run manifest besides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IslandsManifest {
    /// Lineage's version.
    pub lineage_version: String,
    /// The git commit Lineage was built from, when known.
    pub git_commit: Option<String>,
    /// The scenario's name.
    pub scenario: String,
    /// SHA-256 of `scenario.toml`.
    pub scenario_sha256: String,
    /// The seed.
    pub seed: u64,
    /// Number of islands.
    pub islands: usize,
    /// When the run started (UTC).
    pub started: String,
    /// When the last session ended, if it did.
    pub finished: Option<String>,
    /// Each invocation (the run, then resumes).
    pub sessions: Vec<IslandsSession>,
}

/// One invocation of an island model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IslandsSession {
    /// `run` or `resume`.
    pub command: String,
    /// Processes (1 without MPI).
    pub processes: usize,
    /// Worker threads per process as asked (0: one per core).
    pub threads: usize,
    /// Each process's host, in process order.
    pub hosts: Vec<String>,
    /// First generation it ran.
    pub from_generation: u32,
    /// Started (UTC).
    pub started: String,
    /// Ended (UTC), if it did.
    pub finished: Option<String>,
}

impl IslandsManifest {
    pub(super) fn path(root: &Path) -> PathBuf {
        root.join(crate::manifest::MANIFEST)
    }

    /// Reads `root/manifest.json`; `None` if there is none (a run from
    /// before it was written).
    pub(super) fn read(root: &Path) -> Result<Option<IslandsManifest>, EngineError> {
        let path = Self::path(root);
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::io("cannot read", &path)(e)),
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| EngineError::BadRunDir {
                        path,
                        message: format!("is not an island run's manifest: {e}"),
                    })
            }
        }
    }

    /// Writes `root/manifest.json` atomically.
    pub(super) fn write(&self, root: &Path) -> Result<(), EngineError> {
        let path = Self::path(root);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        crate::checkpoint::write_synced(&tmp, &json)?;
        std::fs::rename(&tmp, &path).map_err(EngineError::io("cannot write", &path))
    }
}

/// Every process's host name, at process 0 (nothing elsewhere).
pub(super) fn hosts(fabric: &dyn Fabric) -> Result<Vec<String>, EngineError> {
    let all = fabric.gather(crate::manifest::host_name().into_bytes())?;
    Ok(all
        .into_iter()
        .map(|h| String::from_utf8_lossy(&h).into_owned())
        .collect())
}

/// A session of `command` on this fabric, from generation `g`, now.
pub(super) fn session(
    command: &str,
    fabric: &dyn Fabric,
    threads: usize,
    hosts: Vec<String>,
    g: u32,
) -> IslandsSession {
    IslandsSession {
        command: command.into(),
        processes: fabric.size(),
        threads,
        hosts,
        from_generation: g,
        started: crate::manifest::utc_now(),
        finished: None,
    }
}
