//! End-to-end and architecture tests for the whole workspace.

mod access;
mod agent;
mod architecture;
mod chaos;
mod cluster;
mod hotswap;
mod netconf;
mod netconf_correctness;
mod proxy;
mod upgrade;
