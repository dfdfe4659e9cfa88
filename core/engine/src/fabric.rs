//! How the processes that run one island model talk: the [`Fabric`]
//! trait, its one-process form [`OneProcess`], and the blocks of islands
//! each process owns.
//!
//! The island runner (`islands.rs`) needs four things from its processes:
//! migrant batches sent point to point, one small word from every process
//! (agreeing to go on, stop or fail), every process's migration rows at
//! process 0, and process 0's run directory everywhere. `lineage-mpi`
//! implements them on MPI; this crate stays free of it, and without MPI
//! every island lives in [`OneProcess`].
//!
//! The contract an implementation keeps: messages from one process to
//! another are received in the order they were sent (MPI's non-overtaking
//! rule); sending never waits on the receiver, so every process may send
//! all its batches before receiving any; each call is collective (every
//! process makes the same calls in the same order).

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::error::EngineError;

/// The processes of one island model.
pub trait Fabric {
    /// This process's index, from 0.
    fn rank(&self) -> usize;

    /// How many processes there are.
    fn size(&self) -> usize;

    /// Sends each `(process, bytes)` as one message and receives one
    /// message from each process in `from`, in that order.
    fn exchange(
        &self,
        sends: Vec<(usize, Vec<u8>)>,
        from: &[usize],
    ) -> Result<Vec<Vec<u8>>, EngineError>;

    /// Every process's `word`, in process order.
    fn all_gather(&self, word: u64) -> Result<Vec<u64>, EngineError>;

    /// Every process's `bytes` at process 0, in process order; nothing at
    /// the others.
    fn gather(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>, EngineError>;

    /// Process 0's `bytes`, at every process (the others' are ignored).
    fn broadcast(&self, bytes: Vec<u8>) -> Result<Vec<u8>, EngineError>;

    /// How this process is named in messages.
    fn name(&self) -> String {
        name(self.rank(), self.size())
    }

    /// Hears the island model's run directory, once every process knows
    /// it (for messages such as how to resume).
    fn note_run_dir(&self, _dir: &std::path::Path) {}

    /// Hears that every process learned of a failure at an agreement
    /// (`islands::agree`), so all stop together and may say goodbye
    /// (`MPI_Finalize`); after a failure the others never heard of, a
    /// process must exit without waiting for them.
    fn heard_failure(&self) {}

    /// The longest message [`Fabric::exchange`] can send, in bytes.
    fn max_message(&self) -> usize {
        usize::MAX
    }
}

/// Every island in this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct OneProcess;

impl Fabric for OneProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn exchange(
        &self,
        sends: Vec<(usize, Vec<u8>)>,
        from: &[usize],
    ) -> Result<Vec<Vec<u8>>, EngineError> {
        // Every message is to and from this process, in order.
        if sends.len() != from.len()
            || sends.iter().any(|(p, _)| *p != 0)
            || from.iter().any(|&p| p != 0)
        {
            return Err(EngineError::Fabric(
                "one process cannot send to or receive from another".into(),
            ));
        }
        Ok(sends.into_iter().map(|(_, bytes)| bytes).collect())
    }

    fn all_gather(&self, word: u64) -> Result<Vec<u64>, EngineError> {
        Ok(vec![word])
    }

    fn gather(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>, EngineError> {
        Ok(vec![bytes])
    }

    fn broadcast(&self, bytes: Vec<u8>) -> Result<Vec<u8>, EngineError> {
        Ok(bytes)
    }
}

/// The environment variables an MPI launcher sets in the processes it
/// starts: Open MPI's, then PMI's (MPICH, Intel MPI, Slurm's PMI-2), then
/// PMIx's (Slurm's `--mpi=pmix`, Open MPI 5).
const LAUNCHER_VARS: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"];

/// True when an MPI launcher started this process (read from the
/// environment, without touching MPI).
pub fn launched() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// This process's rank among those an MPI launcher started.
pub fn launched_rank() -> Option<usize> {
    env_count(&["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"])
}

/// How many processes an MPI launcher started (1 when none did).
pub fn launched_processes() -> usize {
    match launched() {
        true => env_count(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]).unwrap_or(1),
        false => 1,
    }
}

/// The first of `vars` set to a whole number.
fn env_count(vars: &[&str]) -> Option<usize> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// How process `rank` of `size` is named in messages.
pub fn name(rank: usize, size: usize) -> String {
    format!("process {rank} of {size}")
}

/// The islands process `rank` of `size` owns: a contiguous block, the
/// blocks in process order, their sizes differing by at most one.
pub fn block(rank: usize, size: usize, islands: usize) -> Range<usize> {
    rank * islands / size..(rank + 1) * islands / size
}

/// The process that owns `island`.
pub fn owner(island: usize, size: usize, islands: usize) -> usize {
    (0..size)
        .find(|&p| block(p, size, islands).contains(&island))
        .expect("every island has an owner")
}

/// A fabric that counts the time spent in its calls, messages and bytes:
/// what the run reports as its communication share.
pub struct Timed<'a> {
    inner: &'a dyn Fabric,
    /// Time spent inside the fabric's calls, waiting included.
    pub time: std::cell::Cell<Duration>,
    /// Point-to-point messages sent.
    pub messages: std::cell::Cell<u64>,
    /// Bytes sent in them.
    pub bytes: std::cell::Cell<u64>,
}

impl<'a> Timed<'a> {
    /// Counts `inner`'s calls.
    pub fn new(inner: &'a dyn Fabric) -> Timed<'a> {
        Timed {
            inner,
            time: Default::default(),
            messages: Default::default(),
            bytes: Default::default(),
        }
    }

    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.time.set(self.time.get() + start.elapsed());
        out
    }
}

impl Fabric for Timed<'_> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn exchange(
        &self,
        sends: Vec<(usize, Vec<u8>)>,
        from: &[usize],
    ) -> Result<Vec<Vec<u8>>, EngineError> {
        self.messages.set(self.messages.get() + sends.len() as u64);
        let sent: usize = sends.iter().map(|(_, b)| b.len()).sum();
        self.bytes.set(self.bytes.get() + sent as u64);
        self.timed(|| self.inner.exchange(sends, from))
    }

    fn all_gather(&self, word: u64) -> Result<Vec<u64>, EngineError> {
        self.timed(|| self.inner.all_gather(word))
    }

    fn gather(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>, EngineError> {
        self.timed(|| self.inner.gather(bytes))
    }

    fn broadcast(&self, bytes: Vec<u8>) -> Result<Vec<u8>, EngineError> {
        self.timed(|| self.inner.broadcast(bytes))
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn note_run_dir(&self, dir: &std::path::Path) {
        self.inner.note_run_dir(dir)
    }

    fn heard_failure(&self) {
        self.inner.heard_failure()
    }

    fn max_message(&self) -> usize {
        self.inner.max_message()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_islands_in_order() {
        for size in 1..=5 {
            for islands in size..=11 {
                let mut next = 0;
                for rank in 0..size {
                    let b = block(rank, size, islands);
                    assert_eq!(b.start, next);
                    assert!(!b.is_empty(), "{rank}/{size} of {islands}");
                    assert!(b.len() <= islands.div_ceil(size));
                    for island in b.clone() {
                        assert_eq!(owner(island, size, islands), rank);
                    }
                    next = b.end;
                }
                assert_eq!(next, islands);
            }
        }
    }
}
