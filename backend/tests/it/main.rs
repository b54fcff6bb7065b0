//! Backend tests: CRIM and CEC replayed as state machines, timing logic
//! under tokio's paused clock, the repository across restarts and crashes,
//! the HA core end to end with real `counterd` processes, and CRIM
//! scenarios from `test_data/crim` replayed against their recording.

mod cec;
mod crim;
mod factory;
mod health;
mod repo;
mod scenario;
mod supervision;
#[path = "../support/mod.rs"]
mod support;
