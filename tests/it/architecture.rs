//! The crate boundaries ARCHITECTURE.md promises, checked over `cargo metadata`.

use std::collections::BTreeMap;
use std::process::Command;

/// Declared dependencies of every workspace member: name -> (path, deps).
fn workspace() -> BTreeMap<String, (String, Vec<String>)> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (
                p["name"].as_str().unwrap().to_string(),
                (p["manifest_path"].as_str().unwrap().to_string(), deps),
            )
        })
        .collect()
}

fn is_adapter(path: &str) -> bool {
    path.contains("/adapters/")
}

#[test]
fn crate_edges_follow_the_architecture() {
    let ws = workspace();
    let ours = |d: &String| ws.contains_key(d);
    let mut violations = Vec::new();
    for (name, (path, deps)) in &ws {
        let allowed: &[&str] = match name.as_str() {
            "halyard-schema" => &[],
            "halyard-cluster-model" => &["halyard-schema"],
            "halyard-consensus" => &[],
            "halyard-backend" => &["halyard-cluster-model", "halyard-consensus"],
            "halyard-agent" | "halyard-tests" => continue,
            "halyard-test-ports" => &[],
            _ if is_adapter(path) => &["halyard-cluster-model"],
            other => {
                violations.push(format!("{other}: not in the crate map of ARCHITECTURE.md"));
                continue;
            }
        };
        // The test-port helper is a dev-dependency anyone may take; it knows nothing else.
        for d in deps
            .iter()
            .filter(|d| ours(d) && d.as_str() != "halyard-test-ports")
        {
            if !allowed.contains(&d.as_str()) {
                violations.push(format!("{name} depends on {d}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden crate edges: {violations:#?}"
    );
}

#[test]
fn the_core_knows_no_protocol_and_adapters_no_persistence() {
    let protocol = [
        "rasn",
        "rasn-snmp",
        "rasn-smi",
        "russh",
        "ssh2",
        "axum",
        "hyper",
        "quick-xml",
        "prometheus-client",
    ];
    let persistence = ["sqlx", "rusqlite", "libsqlite3-sys"];
    let ws = workspace();
    let mut violations = Vec::new();
    for (name, (path, deps)) in &ws {
        let forbidden: &[&str] = match name.as_str() {
            "halyard-backend"
            | "halyard-consensus"
            | "halyard-cluster-model"
            | "halyard-schema" => &protocol,
            _ if is_adapter(path) => &persistence,
            _ => continue,
        };
        for d in deps {
            if forbidden.contains(&d.as_str()) {
                violations.push(format!("{name} depends on {d}"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}
