//! The cluster information model.
//!
//! - [`model`]: Rust types generated from `schema/*.mof` (enums, one struct
//!   per class) and [`model::SCHEMA`], the metadata adapters translate with.
//! - [`port`]: the information-model port, the only way adapters reach the
//!   agent, with its typed errors.
//! - [`memory`]: an in-memory implementation of the port, so adapters can be
//!   tested before (and without) the agent.

pub mod alarm;
pub mod latency;
pub mod layer;
pub mod memory;
pub mod meta;
pub mod name;
pub mod port;
pub mod value;

/// Generated from the schema by `build.rs`.
#[allow(clippy::all, missing_docs)]
pub mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

pub use meta::{AttrMeta, AttrType, ClassMeta, SchemaMeta};
pub use model::SCHEMA;
pub use name::ObjectName;
pub use value::{ManagedClass, SchemaEnum, Timestamp, Value};
