//! End-to-end tests of the SNMP face: the agent runs in-process over the
//! in-memory demo element and the REAL net-snmp tools talk to it.

mod behaviour;
mod crypto;
mod harness;
mod malformed;
mod netsnmp;
mod notifications;
