//! `cargo codegen [--check]`: writes (or checks) mib/ and yang/ from the schema.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schema = match halyard_schema::compile_dir(&root.join("cluster-model/schema")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        let stale = halyard_schema::stale_files(&schema, &root);
        for f in &stale {
            eprintln!("stale: {} (run `cargo codegen` and commit)", f.display());
        }
        return if stale.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    for g in halyard_schema::shipped_files(&schema) {
        let path = root.join(&g.path);
        if let Err(e) = std::fs::write(&path, &g.text) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", g.path.display());
    }
    ExitCode::SUCCESS
}
