//! The Halyard schema compiler.
//!
//! `cluster-model/schema/*.mof` (a MOF-like language) is parsed ([`parse`]),
//! validated into one intermediate representation ([`ir::Schema`]), and fed
//! to backends: Rust types and metadata ([`rust`]), the SMIv2 MIB ([`smi`]),
//! the YANG module ([`yang`]) and Prometheus metric names ([`metrics`]).
//! `cluster-model/build.rs` runs the Rust backend; `cargo codegen` writes
//! `mib/` and `yang/`, which are committed and checked fresh by a test.

pub mod diag;
pub mod ir;
pub mod metrics;
pub mod names;
pub mod parse;
pub mod rust;
pub mod smi;
pub mod yang;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, SchemaError, SourceFile};
pub use ir::Schema;

/// Parses and validates a set of schema files; every error is reported.
pub fn compile(files: &[SourceFile]) -> Result<Schema, SchemaError> {
    let mut errors = Vec::new();
    let mut decls = Vec::new();
    for f in files {
        decls.extend(parse::parse_file(f, &mut errors));
    }
    // Validation runs even after syntax errors so one run shows everything.
    let schema = ir::build(&decls, &mut errors);
    errors.sort_by(|a, b| {
        (a.loc.file.as_ref(), a.loc.offset, &a.message).cmp(&(
            b.loc.file.as_ref(),
            b.loc.offset,
            &b.message,
        ))
    });
    errors.dedup();
    match schema {
        Some(s) if errors.is_empty() => Ok(s),
        _ => Err(SchemaError::Invalid(errors)),
    }
}

/// The `*.mof` files of a directory, in name order.
pub fn schema_files(dir: &Path) -> Result<Vec<PathBuf>, SchemaError> {
    let io = |source| SchemaError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mof"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and compiles every `*.mof` file of a directory.
pub fn compile_dir(dir: &Path) -> Result<Schema, SchemaError> {
    let mut sources = Vec::new();
    for path in schema_files(dir)? {
        sources.push(SourceFile::read(&path).map_err(|source| SchemaError::Io {
            path: path.clone(),
            source,
        })?);
    }
    compile(&sources)
}

/// A generated file: where it goes, relative to the repository root, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub path: PathBuf,
    pub text: String,
}

/// The files `cargo codegen` writes and the freshness test compares.
pub fn shipped_files(schema: &Schema) -> Vec<Generated> {
    let mut v = vec![
        Generated {
            path: PathBuf::from("mib").join(format!("{}.txt", schema.module.mib_module)),
            text: smi::generate(schema),
        },
        Generated {
            path: PathBuf::from("yang").join(format!(
                "{}@{}.yang",
                schema.module.yang_module, schema.module.revision
            )),
            text: yang::generate(schema),
        },
    ];
    if let Some(text) = yang::generate_alarm_types(schema) {
        let (name, _, _) = yang::alarm_types_names(&schema.module);
        v.push(Generated {
            path: PathBuf::from("yang").join(format!("{name}@{}.yang", schema.module.revision)),
            text,
        });
    }
    v
}

/// Compares the generated files with those under `root`; returns the stale ones.
pub fn stale_files(schema: &Schema, root: &Path) -> Vec<PathBuf> {
    shipped_files(schema)
        .into_iter()
        .filter(|g| std::fs::read_to_string(root.join(&g.path)).ok().as_deref() != Some(&g.text))
        .map(|g| g.path)
        .collect()
}
