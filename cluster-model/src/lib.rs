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

#[cfg(test)]
mod patch_tests {
    use crate::model::{JobPatch, JobState};
    use crate::{SCHEMA, SchemaEnum, Value};

    /// A generated patch names its class's attributes, with values of
    /// their types, and cuts strings to their MaxLen.
    #[test]
    fn a_patch_is_typed_and_cuts_strings_to_their_max_len() {
        let p = JobPatch::new()
            .state(JobState::Failed)
            .detail("é".repeat(300))
            .steps_done(2);
        assert_eq!(
            p.values()[0],
            ("State", Value::Enum(JobState::Failed.value()))
        );
        let meta = SCHEMA.class("Job").unwrap();
        for (attr, v) in p.values() {
            let (_, a) = meta.attribute(attr).unwrap();
            v.check(&a.ty).unwrap_or_else(|e| panic!("{attr}: {e}"));
        }
        let Value::Str(detail) = &p.values()[1].1 else {
            panic!("{:?}", p.values()[1])
        };
        let (_, a) = meta.attribute("Detail").unwrap();
        let crate::AttrType::String { max_len } = a.ty else {
            panic!("{:?}", a.ty)
        };
        assert_eq!(detail.chars().count(), max_len as usize);
    }
}
