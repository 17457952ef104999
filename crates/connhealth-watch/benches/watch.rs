//! The daemon benchmark (being written).
fn main() {}
