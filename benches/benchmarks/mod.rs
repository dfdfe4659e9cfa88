//! Benchmark modules.

pub mod engine;
pub mod operators;
pub mod plugins;
pub mod probes;
pub mod selection;
