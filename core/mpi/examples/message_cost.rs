//! The cost of the messages an island model sends, measured under the
//! launcher (BENCHMARKS.md, "Island model over MPI"):
//!
//!     cargo build --release -p lineage-mpi --features mpi --example message_cost
//!     mpirun --oversubscribe -np 2 target/release/examples/message_cost
//!
//! Process 0 and 1 bounce one message of each size (a migrant batch is
//! one message) and report half the median round trip; then every
//! process times the one-word `MPI_Allgather` the processes agree with
//! twice per generation. One JSON object per line from process 0.

use std::time::Instant;

use mpi::traits::*;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let universe = mpi::initialize().expect("MPI initialises");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    assert!(size >= 2, "run under mpirun -np 2 (or more)");
    // 8 B; a OneMax migrant of 64 bits (about 60 B); a batch of 2 MLP
    // 64-128-10 migrants with their curves (about 4 KB); and with their
    // learned weights (Lamarckian, about 80 KB); 1 MiB.
    for bytes in [8usize, 64, 4 << 10, 80 << 10, 1 << 20] {
        let buf = vec![7u8; bytes];
        let mut times = Vec::new();
        for round in 0..(if bytes > 100_000 { 200 } else { 2_000 }) {
            world.barrier();
            let start = Instant::now();
            if rank == 0 {
                world.process_at_rank(1).send(&buf[..]);
                let _ = world.process_at_rank(1).receive_vec::<u8>();
            } else if rank == 1 {
                let (v, _) = world.process_at_rank(0).receive_vec::<u8>();
                world.process_at_rank(0).send(&v[..]);
            }
            if round >= 10 {
                times.push(start.elapsed().as_secs_f64() / 2.0);
            }
        }
        if rank == 0 {
            let one_way = median(times);
            println!(
                "{{\"measure\":\"one_way\",\"bytes\":{bytes},\"seconds\":{one_way:.3e},\"bytes_per_second\":{:.3e}}}",
                bytes as f64 / one_way
            );
        }
    }
    let mut times = Vec::new();
    let mut words = vec![0u64; size as usize];
    for round in 0..5_000 {
        world.barrier();
        let start = Instant::now();
        world.all_gather_into(&(rank as u64), &mut words[..]);
        if round >= 10 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    if rank == 0 {
        println!(
            "{{\"measure\":\"all_gather_word\",\"processes\":{size},\"seconds\":{:.3e}}}",
            median(times)
        );
    }
}
