//! Criterion benches of the protocol parsers (being written).
fn main() {}
