//! Compiles the schema into Rust types and metadata in OUT_DIR.

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
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("model.rs");
    std::fs::write(&out, halyard_schema::rust::generate(&schema, "crate")).expect("write model.rs");
}
