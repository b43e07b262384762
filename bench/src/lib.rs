//! ringbox-bench: shared fixtures for the criterion benches and the load harness.
