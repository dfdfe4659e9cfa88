//! Records the git commit Lineage was built from, when it is known, for run
//! manifests.
//!
//! Cargo re-runs a build script whenever a file it names is missing, so the
//! script names only files that exist: `HEAD` (a checkout or a branch
//! switch), the loose ref file HEAD points at (a commit on the branch), and
//! `packed-refs` where there is one (a ref that `git gc` or a clone packed).
//! A checkout whose refs are all loose has no `packed-refs`; naming it
//! anyway made every build recompile this crate and the binary. Without git
//! (a source tarball) it names only itself: built once, no commit recorded.

use std::path::PathBuf;
use std::process::Command;

/// `git` with these arguments, run in this crate's folder: its trimmed
/// output, or `None` where git is missing or fails (not a checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The files whose change means HEAD may name another commit; each exists.
fn watched_files() -> Vec<PathBuf> {
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return Vec::new();
    };
    let git_dir = PathBuf::from(git_dir);
    // Branch refs live in the common folder (the main .git of a worktree).
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map_or_else(|| git_dir.clone(), PathBuf::from);
    let mut files = vec![git_dir.join("HEAD")];
    // `refs/heads/main`, say; none on a detached HEAD.
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        files.push(git_dir.join(&reference));
        files.push(common.join(&reference));
    }
    files.push(common.join("packed-refs"));
    files.sort();
    files.dedup();
    files.retain(|f| f.is_file());
    files
}

fn main() {
    if let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=LINEAGE_GIT_COMMIT={commit}");
    }
    let files = watched_files();
    if files.is_empty() {
        println!("cargo:rerun-if-changed=build.rs");
    }
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
}
