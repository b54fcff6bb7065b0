//! Compiles the schema into Rust types and metadata, and its YANG module
//! text, in OUT_DIR.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let schema_dir = dir.join("schema");
    println!("cargo::rerun-if-changed={}", schema_dir.display());
    for f in halyard_schema::schema_files(&schema_dir).expect("schema directory") {
        println!("cargo::rerun-if-changed={}", f.display());
    }
    let schema = match halyard_schema::compile_dir(&schema_dir) {
        Ok(s) => s,
        Err(e) => {
            // Every error, one per line, with file:line:col.
            for line in e.to_string().lines() {
                println!("cargo::error={line}");
            }
            std::process::exit(1);
        }
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("model.rs"),
        halyard_schema::rust::generate(&schema, "crate"),
    )
    .expect("write model.rs");
    // The YANG module's text as the schema makes it (the shipped copy under
    // yang/ is this text: the codegen's freshness test checks it), so the
    // NETCONF face serves it without naming a file or a revision.
    std::fs::write(
        out.join("module.yang"),
        halyard_schema::yang::generate(&schema),
    )
    .expect("write module.yang");
    // The alarm-types module (ietf-alarms identities), likewise.
    let (name, namespace, prefix) = halyard_schema::yang::alarm_types_names(&schema.module);
    let text = halyard_schema::yang::generate_alarm_types(&schema).unwrap_or_default();
    std::fs::write(out.join("alarm-types.yang"), &text).expect("write alarm-types.yang");
    std::fs::write(
        out.join("alarm_types.rs"),
        format!(
            "/// The module's name.\npub const NAME: &str = {name:?};\n\
             /// Its namespace.\npub const NAMESPACE: &str = {namespace:?};\n\
             /// Its prefix.\npub const PREFIX: &str = {prefix:?};\n\
             /// Its text (empty: the schema has no alarmType role).\n\
             pub const TEXT: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/alarm-types.yang\"));\n"
        ),
    )
    .expect("write alarm_types.rs");
}
