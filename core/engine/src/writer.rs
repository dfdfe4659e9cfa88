//! The background checkpoint writer: a large population's checkpoint is
//! encoded on the run's thread (what the world holds is copied out) and
//! written to disk on this thread while the next generation runs.
//!
//! One checkpoint is in flight at most: the channel is bounded, and the run
//! waits for the previous write before it hands over the next, before its
//! manifest is closed and before it reports a failure. A checkpoint is
//! complete only once written (tables synced, files synced, renamed into
//! place); a process killed meanwhile leaves a `.tmp` folder that resume
//! ignores, so it resumes from the checkpoint before, exactly. Write errors
//! come back to the run as its own errors. Only I/O moves here: what a run
//! computes and records does not depend on it.

use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::checkpoint::Encoded;
use crate::error::EngineError;
use crate::recorder::Unsynced;

/// One checkpoint to write: the tables it counts are synced first.
struct Job {
    tables: Vec<Unsynced>,
    checkpoint: Encoded,
}

/// Writes checkpoints on a thread of its own.
pub(crate) struct Writer {
    jobs: Option<Sender<Job>>,
    done: Receiver<Result<PathBuf, EngineError>>,
    thread: Option<JoinHandle<()>>,
    /// The generation of the checkpoint in flight.
    in_flight: Option<u32>,
}

impl Writer {
    /// Starts the writer thread.
    pub(crate) fn start() -> Result<Writer, EngineError> {
        let (jobs, queue) = bounded::<Job>(1);
        let (report, done) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("lineage-writer".into())
            .spawn(move || {
                for job in queue {
                    let result = job
                        .tables
                        .into_iter()
                        .try_for_each(Unsynced::sync)
                        .and_then(|()| job.checkpoint.write());
                    if report.send(result).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| EngineError::Io {
                action: "cannot start",
                path: PathBuf::from("the checkpoint writer thread"),
                source: e,
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: None,
        })
    }

    /// Hands a checkpoint over, after waiting for the one in flight.
    pub(crate) fn submit(
        &mut self,
        tables: Vec<Unsynced>,
        checkpoint: Encoded,
    ) -> Result<(), EngineError> {
        self.wait()?;
        let generation = checkpoint.generation();
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job { tables, checkpoint }).is_ok());
        if !sent {
            return Err(stopped());
        }
        self.in_flight = Some(generation);
        Ok(())
    }

    /// Waits until the checkpoint in flight, if any, is written; returns
    /// its folder.
    pub(crate) fn wait(&mut self) -> Result<Option<PathBuf>, EngineError> {
        if self.in_flight.take().is_none() {
            return Ok(None);
        }
        match self.done.recv() {
            Ok(result) => result.map(Some),
            Err(_) => Err(stopped()),
        }
    }
}

/// The writer thread is gone (it panicked: a bug, reported by the panic
/// hook).
fn stopped() -> EngineError {
    EngineError::Io {
        action: "cannot write a checkpoint to",
        path: PathBuf::from("the checkpoint writer thread"),
        source: std::io::Error::other("the writer thread stopped"),
    }
}

impl Drop for Writer {
    /// Finishes the write in flight (a run that ends by an error still
    /// completes the checkpoint it handed over), then ends the thread.
    fn drop(&mut self) {
        let _ = self.wait();
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
