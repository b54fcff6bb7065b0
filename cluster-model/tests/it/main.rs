//! cluster-model tests: the compiled fixture and the in-memory port.

mod fixture;
mod memory;
