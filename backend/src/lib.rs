//! The HA core of Halyard (the seed's FIG. 5, 6, 7, 9, 10 on one node).
//!
//! - [`state`]: availability transitions (FIG. 5);
//! - [`crim`]: the component role and instance manager, a pure state machine;
//! - [`cec`]: the component error correlator;
//! - [`health`]: audits, the watchdog, black boxes;
//! - [`asr`]: availability incidents and figures;
//! - [`events`], [`naming`], [`repo`], [`checkpoint`]: distributed system
//!   services (single-node implementations);
//! - [`core`]: the run-time that executes CRIM's decisions through the
//!   component factory (processes, HA-aware daemons, simulated hardware);
//! - [`replicated`]: the replicated changes kept for the agent's readers
//!   (bounded retention, cursors by log index);
//! - [`cluster`] and [`cmm`]: the node of a cluster — replicated commands
//!   applied by every node's CRIM replica, heartbeats, failure detection and
//!   the lease that fences a node cut off from the majority (consensus
//!   itself is `halyard-consensus`, on openraft);
//! - [`hotswap`]: hot-swap bus support — FRU insertions and removals from
//!   a bus behind one trait (the simulated bus, a directory-watching bus);
//! - [`tasks`]: owned tasks (a reaper logs, counts and handles panics);
//! - [`release`]: a node's two-slot software store (fetch, incremental
//!   propagation, checksums; the base of the upgrade manager);
//! - [`remote`]: the port through which proxy components manage non-peer
//!   nodes (FIG. 8), and the report format of their `stats` command;
//! - [`protocol`] and [`client`]: the HA-aware component protocol and its
//!   client library (used by `counterd`).
//!
//! The backend knows nothing about SNMP, NETCONF, HTTP or Prometheus.

pub mod asr;
pub mod cec;
pub mod checkpoint;
pub mod client;
pub mod cluster;
pub mod cmm;
pub mod core;
pub mod counterd;
pub mod crim;
pub mod events;
pub mod health;
pub mod hotswap;
pub mod lane;
pub mod naming;
pub mod protocol;
pub mod release;
pub mod remote;
pub mod replicated;
pub mod repo;
pub mod spawn;
pub mod state;
pub mod tasks;
