//! Backend tests: CRIM and CEC replayed as state machines, timing logic
//! under tokio's paused clock, the repository across restarts and crashes,
//! and the HA core end to end with real `counterd` processes.

mod cec;
mod crim;
mod factory;
mod health;
mod repo;
mod supervision;
