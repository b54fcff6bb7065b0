//! The shipped modules, checked by the validators operators use.
//! The test script (tests/run.sh) installs these tools.

use std::path::PathBuf;
use std::process::Command;

use crate::expect::repo_root;

/// Base SMIv2 modules (SNMPv2-SMI, -TC, -CONF) from the npm package net-snmp.
fn base_mibs() -> PathBuf {
    let dir = std::env::var_os("HALYARD_BASE_MIBS").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/halyard-npm/node_modules/net-snmp/lib/mibs")
        },
        PathBuf::from,
    );
    assert!(
        dir.join("SNMPv2-SMI.mib").is_file(),
        "base SMIv2 modules not found in {}: run tests/run.sh, which installs them",
        dir.display()
    );
    dir
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (tests/run.sh installs it)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mib_path() -> PathBuf {
    repo_root().join("mib/HALYARD-CLUSTER-MIB.txt")
}

fn yang_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("yang"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yang"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

/// Warnings smilint may print, each justified in ARCHITECTURE.md.
const ACCEPTED_SMILINT_WARNINGS: &[&str] = &[
    // enterprises.32473 (RFC 5612's documentation number) is defined by no
    // module, so the module identity's parent node is implicit.
    ":25: warning: implicit node definition",
];

#[test]
fn smilint_reports_no_errors_for_the_mib() {
    // smilint exits 0 even when it reports errors: read what it prints.
    let (_, out, err) = run(Command::new("smilint")
        .args(["-l", "6", "-i", "namelength-32"])
        .arg(mib_path())
        .env("SMIPATH", base_mibs()));
    let text = out + &err;
    let unexplained: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !ACCEPTED_SMILINT_WARNINGS.iter().any(|w| l.contains(w)))
        .collect();
    assert!(unexplained.is_empty(), "smilint: {unexplained:#?}");
}

#[test]
fn snmptranslate_prints_the_whole_tree() {
    let mut search = base_mibs().into_os_string();
    search.push(":");
    search.push(repo_root().join("mib"));
    let (ok, out, err) = run(Command::new("snmptranslate").arg("-M").arg(&search).args([
        "-m",
        "HALYARD-CLUSTER-MIB",
        "-Tp",
    ]));
    assert!(ok, "snmptranslate failed: {err}");
    assert!(
        !err.contains("HALYARD"),
        "snmptranslate complained about our MIB: {err}"
    );
    let schema = halyard_schema::compile_dir(&repo_root().join("cluster-model/schema")).unwrap();
    for c in schema.object_classes() {
        let table = format!("hc{}Table({})", c.mib_name, c.oid);
        assert!(out.contains(&table), "tree lacks {table}");
        for a in &c.attributes {
            assert!(out.contains(&format!("hc{}{}({})", c.mib_name, a.mib_name, a.oid)));
        }
    }
    for n in schema.indications() {
        assert!(out.contains(&format!("hc{}({})", n.mib_name, n.oid)));
    }
    assert!(out.contains("hcObjectTable(100)") && out.contains("hcChildTable(101)"));
}

#[test]
fn yanglint_accepts_every_module() {
    for f in yang_files() {
        let (ok, out, err) = run(Command::new("yanglint")
            .arg("-p")
            .arg(repo_root().join("yang"))
            .arg("-p")
            .arg(repo_root().join("yang/standard"))
            .arg(&f));
        assert!(
            ok && out.trim().is_empty() && err.trim().is_empty(),
            "yanglint {}: {out}{err}",
            f.display()
        );
    }
}

#[test]
fn pyang_strict_accepts_every_module() {
    for f in yang_files() {
        let (ok, out, err) = run(Command::new("python3")
            .args(["-m", "pyang", "--strict", "-p"])
            .arg(format!(
                "{}:{}",
                repo_root().join("yang").display(),
                repo_root().join("yang/standard").display()
            ))
            .arg(&f));
        assert!(
            ok && out.trim().is_empty() && err.trim().is_empty(),
            "pyang --strict {}: {out}{err}",
            f.display()
        );
    }
}

/// What `pyang --ietf` says of any module the IETF did not publish: its
/// name and namespace are not `ietf-…`, and it carries no IETF Trust
/// copyright. Nothing else may be reported.
const IETF_ONLY_RULES: &[&str] = &["RFC 8407: 4.1:", "RFC 8407: 4.9:", "RFC 8407: 3.1:"];

#[test]
fn pyang_ietf_reports_nothing_but_the_rules_only_ietf_modules_meet() {
    for f in yang_files() {
        let (_, out, err) = run(Command::new("python3")
            .args(["-m", "pyang", "--ietf", "-p"])
            .arg(format!(
                "{}:{}",
                repo_root().join("yang").display(),
                repo_root().join("yang/standard").display()
            ))
            .arg(&f));
        let text = out + &err;
        let other: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !IETF_ONLY_RULES.iter().any(|r| l.contains(r)))
            .collect();
        assert!(other.is_empty(), "pyang --ietf {}:\n{text}", f.display());
    }
}
