//! cluster-model tests: the compiled fixture, the in-memory port and the
//! schema's standard-meaning qualifiers.

mod fixture;
mod memory;
mod roles;
