//! ringbox-bench: shared fixtures for the criterion benches and the load harness.
//!
//! The criterion benches (`benches/`) measure the protocol parsers in bytes per second.
//! The load harness ([`load`], run through `--bin load` and `--bin metabench`) measures
//! the whole daemon against nginx and other peers on this machine; `bench/README.md`
//! says how to run it and how to read its ratios. [`uring`] is the io_uring ceiling
//! server (`--bin ceiling-uring`, measured by `--bin ceilingbench`): the fastest answer
//! from memory this kernel allows, each modern io_uring feature switchable.

pub mod load;
pub mod uring;
