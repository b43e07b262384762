//! `ringbox`: the daemon binary (being written).
fn main() {}
