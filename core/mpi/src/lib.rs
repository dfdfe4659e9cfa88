//! Island models across processes and machines on MPI: the engine's
//! [`Fabric`] on rsmpi (the `mpi` crate), for `lineage` built with the
//! `mpi` feature and started by `mpirun`, `mpiexec` or Slurm's `srun`.
//!
//! Each process owns a contiguous block of islands
//! ([`lineage_engine::fabric::block`]). A migrant batch travels as one
//! message, sent without waiting (`MPI_Isend`) and received whole
//! (`MPI_Mprobe` then `MPI_Mrecv`), so there is never a size message
//! followed by a data message that oversubscribed processes could deadlock
//! on. Agreements are `MPI_Allgather`s of one word; nothing is reduced in
//! floating point, so records do not depend on the number of processes.
//!
//! MPI is finalised only by [`Mpi::finish_after`] when the island model
//! ended or every process heard of its failure at an agreement. A process
//! that panics, or fails where the others cannot hear of it, exits without
//! finalising (`MPI_Finalize` would wait for peers that wait for it); the
//! launcher then ends the other processes.
//!
//! Everything here is behind the crate's `mpi` feature (the `lineage`
//! binary's `mpi` feature turns it on), so that the workspace builds and
//! tests where no MPI library is installed.

#![cfg(feature = "mpi")]

use lineage_engine::EngineError;
use lineage_engine::fabric::Fabric;
use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// Tag of migrant batches.
const BATCH: mpi::Tag = 1;
/// Tag of migration rows on their way to process 0.
const ROWS: mpi::Tag = 2;

/// The processes an MPI launcher started, as one fabric.
pub struct Mpi {
    /// Finalised by [`Mpi::finish`], leaked otherwise (see the crate
    /// documentation).
    universe: std::mem::ManuallyDrop<Universe>,
    world: SimpleCommunicator,
    /// Set when an agreement heard of a failure: every process knows, so
    /// all may finalise.
    failure_heard: std::cell::Cell<bool>,
}

impl Mpi {
    /// Initialises MPI. Only the calling thread talks to MPI (the engine's
    /// worker threads never do), so `MPI_THREAD_FUNNELED` is asked for.
    pub fn init() -> Result<Mpi, EngineError> {
        let (universe, _) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
                EngineError::Fabric("MPI was initialised twice in this process (a bug)".into())
            })?;
        let world = universe.world();
        stop_message(fabric_name(&world));
        Ok(Mpi {
            universe: std::mem::ManuallyDrop::new(universe),
            world,
            failure_heard: std::cell::Cell::new(false),
        })
    }

    /// Ends this process's part in MPI after the island model's `outcome`.
    /// When the model ended, or every process heard of its failure at an
    /// agreement, `report` says what this process has to say (its error)
    /// and then all wait for each other before finalising: a process that
    /// exited first with an error would make the launcher end the others
    /// before they had said theirs. Otherwise (a failure the others never
    /// heard of, with them still waiting for this process in some call)
    /// it leaves without finalising, which would wait for them forever, so
    /// the launcher ends them once this process exits. Returns whether
    /// `report` ran.
    pub fn finish_after<T, E>(self, outcome: &Result<T, E>, report: impl FnOnce()) -> bool {
        if outcome.is_ok() || self.failure_heard.get() {
            report();
            ENDING.store(true, std::sync::atomic::Ordering::SeqCst);
            self.world.barrier();
            self.finish();
            return true;
        }
        false
    }

    /// Finalises MPI: every process calls it, after the island model ended
    /// or after all heard it failed.
    pub fn finish(mut self) {
        // SAFETY: `universe` is taken once, here, and `self` is dropped
        // without touching it again (`Drop` is not implemented).
        unsafe { std::mem::ManuallyDrop::drop(&mut self.universe) };
    }

    /// The MPI library's own version string.
    pub fn library_version() -> String {
        mpi::environment::library_version().unwrap_or_else(|_| "unknown MPI library".into())
    }

    fn process(&self, rank: usize) -> Result<mpi::topology::Process<'_>, EngineError> {
        i32::try_from(rank)
            .ok()
            .filter(|&r| r < self.world.size())
            .map(|r| self.world.process_at_rank(r))
            .ok_or_else(|| EngineError::Fabric(format!("there is no process {rank}")))
    }
}

fn fabric_name(world: &SimpleCommunicator) -> String {
    lineage_engine::fabric::name(world.rank() as usize, world.size() as usize)
}

/// Set once every process has said what it had to and waits for the
/// others to end: the launcher's SIGTERM from then on is expected and
/// says nothing.
static ENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The run directory, once the island model has one (for the message
/// [`stop_message`] prints).
static RUN_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// When the launcher ends this process (SIGTERM: another process died or
/// the job was cancelled), says so and what to do, then ends as the
/// signal would have.
fn stop_message(this: String) {
    use signal_hook::consts::SIGTERM;
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            if ENDING.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = signal_hook::low_level::emulate_default_handler(SIGTERM);
                std::process::exit(143);
            }
            let resume = match RUN_DIR.get() {
                Some(dir) => format!("`lineage resume {}`", dir.display()),
                None => "`lineage resume RUN_DIR`".into(),
            };
            // One write: other processes' lines share the launcher's pipe.
            let line = format!(
                "error: {this} was stopped by the MPI launcher (SIGTERM), most likely because another process died or the job was cancelled; the run keeps everything up to its last checkpoint: {resume} continues it, with any number of processes\n"
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            let _ = signal_hook::low_level::emulate_default_handler(SIGTERM);
            std::process::exit(143);
        }
    });
}

impl Mpi {
    /// Ends every process: a message of `len` bytes cannot be sent, and the
    /// peers already wait for it. (The island runner checks migrant
    /// batches against [`Fabric::max_message`] at an agreement first, so
    /// only a bug reaches this.)
    fn too_long(&self, len: usize) -> ! {
        let line = format!(
            "error: {}: a message of {len} bytes is longer than MPI can send at once (2 GiB); ending every process\n",
            self.name()
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        self.world.abort(1)
    }
}

impl Fabric for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn note_run_dir(&self, dir: &std::path::Path) {
        let _ = RUN_DIR.set(dir.to_path_buf());
    }

    fn heard_failure(&self) {
        self.failure_heard.set(true);
    }

    fn max_message(&self) -> usize {
        i32::MAX as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn exchange(
        &self,
        sends: Vec<(usize, Vec<u8>)>,
        from: &[usize],
    ) -> Result<Vec<Vec<u8>>, EngineError> {
        if let Some((_, long)) = sends.iter().find(|(_, b)| i32::try_from(b.len()).is_err()) {
            self.too_long(long.len());
        }
        let targets = sends
            .iter()
            .map(|(p, _)| self.process(*p))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = from
            .iter()
            .map(|&p| self.process(p))
            .collect::<Result<Vec<_>, _>>()?;
        let received = mpi::request::scope(|scope| {
            let requests: Vec<_> = targets
                .iter()
                .zip(&sends)
                .map(|(target, (_, bytes))| {
                    target.immediate_send_with_tag(scope, &bytes[..], BATCH)
                })
                .collect();
            let received: Vec<Vec<u8>> = sources
                .iter()
                .map(|source| source.receive_vec_with_tag::<u8>(BATCH).0)
                .collect();
            for request in requests {
                request.wait();
            }
            received
        });
        Ok(received)
    }

    fn all_gather(&self, word: u64) -> Result<Vec<u64>, EngineError> {
        let mut words = vec![0u64; self.size()];
        self.world.all_gather_into(&word, &mut words[..]);
        Ok(words)
    }

    fn gather(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>, EngineError> {
        if i32::try_from(bytes.len()).is_err() {
            self.too_long(bytes.len());
        }
        let root = self.process(0)?;
        if self.rank() != 0 {
            root.send_with_tag(&bytes[..], ROWS);
            return Ok(Vec::new());
        }
        let mut all = Vec::with_capacity(self.size());
        all.push(bytes);
        for p in 1..self.size() {
            all.push(self.process(p)?.receive_vec_with_tag::<u8>(ROWS).0);
        }
        Ok(all)
    }

    fn broadcast(&self, bytes: Vec<u8>) -> Result<Vec<u8>, EngineError> {
        let root = self.process(0)?;
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        let mut buf = if self.rank() == 0 {
            bytes
        } else {
            vec![0u8; len as usize]
        };
        if i32::try_from(buf.len()).is_err() {
            self.too_long(buf.len());
        }
        root.broadcast_into(&mut buf[..]);
        Ok(buf)
    }
}
