//! The library half of the `insights` binary: the composition root ([`serve`]), so that the
//! system tests (`tests/`) and the benchmarks (`benches/`) start exactly what `insights serve`
//! starts. `main.rs` is the thin rest: arguments, the config file, the demo, signals.

pub mod background;
pub mod serve;
