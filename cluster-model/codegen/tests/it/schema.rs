use halyard_schema::{
    SchemaError, SourceFile, compile, metrics, rust, shipped_files, smi, stale_files, yang,
};

use crate::expect::{check, data_dir, repo_root};

fn source(rel: &str) -> SourceFile {
    let text = std::fs::read_to_string(data_dir().join(rel)).expect("read test schema");
    SourceFile::new(format!("tests/data/{rel}"), text)
}

fn real_schema_sources() -> Vec<SourceFile> {
    let dir = repo_root().join("cluster-model/schema");
    halyard_schema::schema_files(&dir)
        .expect("schema dir")
        .into_iter()
        .map(|p| {
            let name = format!("schema/{}", p.file_name().unwrap().to_string_lossy());
            SourceFile::new(name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn errors_of(files: &[SourceFile]) -> Vec<String> {
    match compile(files) {
        Ok(_) => panic!("the schema compiled, but it is broken"),
        Err(SchemaError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn a_broken_schema_reports_every_error_with_file_line_col() {
    let errors = errors_of(&[source("broken/errors.mof")]);
    check(
        &data_dir().join("broken/errors.expected"),
        &(errors.join("\n") + "\n"),
    );
    // Every mistake in the file, not only the first: one per broken spot.
    for (line, what) in [
        (3, "revision"),
        (10, "already used by 'red'"),
        (16, "expected '(' or ';'"),
        (21, "unknown type 'uint24'"),
        (22, "unknown qualifier 'Colour'"),
        (23, "Counter"),
        (24, "Oid(2)"),
        (28, "unknown base class 'Nothing'"),
        (32, "expected ',' or ']'"),
        (38, "found '='"),
        (39, "without qualifier 'Oid'"),
        (
            42,
            "found Entity(\"rack\"), expected one of other, unknown, chassis",
        ),
        (44, "found Role(\"serial\"), expected one of serialNum"),
        (
            45,
            "found Role(\"serialNum\") on 'Number' of type uint32, expected string",
        ),
        (48, "found Fru on class Cog"),
    ] {
        let prefix = format!("tests/data/broken/errors.mof:{line}:");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&prefix) && e.contains(what)),
            "no error at line {line} mentioning {what:?} in:\n{}",
            errors.join("\n")
        );
    }
}

#[test]
fn entity_and_fru_are_inherited_and_an_own_entity_overrides() {
    let head = "[Module(\"M-MIB\"), Yang(\"m\"), Namespace(\"urn:m\"), Prefix(\"m\"), MibPrefix(\"m\"), MetricPrefix(\"m\"), Arc(1), Revision(\"2026-01-01\"), Organization(\"O\"), Contact(\"C\"), Description(\"M.\")]\nschema M;\n";
    let text = format!(
        "{head}[Abstract, Entity(\"other\"), Fru, Description(\"Unit.\")]\nclass Unit {{\n  [Key, Oid(1), Description(\"Name.\")] string Name;\n  [Oid(2), Role(\"serialNum\"), Description(\"Serial.\")] string Serial;\n}};\n\
         [Rdn(\"a\"), Oid(1), Description(\"Inherits.\")]\nclass A : Unit {{\n}};\n\
         [Rdn(\"b\"), Oid(2), Entity(\"fan\"), Description(\"Overrides.\")]\nclass B : Unit {{\n}};\n\
         [Rdn(\"c\"), Oid(3), Description(\"No entity.\")]\nclass C {{\n  [Key, Oid(1), Description(\"Name.\")] string Name;\n}};\n"
    );
    let schema = compile(&[SourceFile::new("m.mof", text)]).expect("compiles");
    let class = |n: &str| schema.class(n).unwrap();
    assert_eq!(class("A").entity.as_deref(), Some("other"));
    assert!(class("A").is_fru);
    assert_eq!(class("B").entity.as_deref(), Some("fan"));
    assert!(class("B").is_fru);
    assert_eq!(class("C").entity, None);
    assert!(!class("C").is_fru);
    let serial = class("B")
        .attributes
        .iter()
        .find(|p| p.name == "Serial")
        .unwrap();
    assert_eq!(serial.role.as_deref(), Some("serialNum"));
}

#[test]
fn a_role_names_one_attribute_per_class() {
    let text = "[Module(\"M-MIB\"), Yang(\"m\"), Namespace(\"urn:m\"), Prefix(\"m\"), MibPrefix(\"m\"), MetricPrefix(\"m\"), Arc(1), Revision(\"2026-01-01\"), Organization(\"O\"), Contact(\"C\"), Description(\"M.\")]\nschema M;\n\
        [Abstract, Description(\"Base.\")]\nclass Base {\n  [Key, Oid(1), Description(\"Name.\")] string Name;\n  [Oid(2), Role(\"alias\"), Description(\"Label.\")] string Label;\n};\n\
        [Rdn(\"d\"), Oid(1), Description(\"Two aliases.\")]\nclass D : Base {\n  [Oid(3), Role(\"alias\"), Description(\"Another.\")] string Other;\n};\n";
    let errors = errors_of(&[SourceFile::new("m.mof", text)]);
    assert!(
        errors.iter().any(|e| e.starts_with("m.mof:10:")
            && e.contains("found Role(\"alias\") on 'Other' and 'Label' in class D")),
        "{errors:#?}"
    );
}

#[test]
fn errors_in_several_files_are_all_reported() {
    let a = SourceFile::new("a.mof", "class A {\n  uint32 X\n};\n");
    let b = SourceFile::new("b.mof", "enumeration E : uint32 { x = 1 }\n");
    let errors = errors_of(&[a, b]);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("a.mof:3:1: error: found '}', expected '(' or ';'")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("b.mof:2:1: error: found end of file, expected ';'")),
        "{errors:#?}"
    );
}

#[test]
fn fixture_backends() {
    let schema = compile(&[source("fixture/minimal.mof")]).expect("fixture compiles");
    let dir = data_dir().join("fixture");
    // This Rust output is also compiled, by cluster-model/tests/fixture.rs.
    check(
        &dir.join("minimal.rs"),
        &rust::generate(&schema, "halyard_cluster_model"),
    );
    check(&dir.join("minimal.mib.txt"), &smi::generate(&schema));
    check(&dir.join("minimal.yang"), &yang::generate(&schema));
    let families: Vec<String> = metrics::families(&schema)
        .into_iter()
        .map(|(n, k, _)| format!("{n} {k:?}"))
        .collect();
    check(&dir.join("minimal.metrics"), &(families.join("\n") + "\n"));
}

#[test]
fn shipped_mib_and_yang_are_fresh() {
    let schema = compile(&real_schema_sources()).expect("the schema compiles");
    let stale = stale_files(&schema, &repo_root());
    if stale.is_empty() {
        return;
    }
    if std::env::var_os("CI").is_none() {
        // Locally: regenerate, then fail once so the change is seen and committed.
        for g in shipped_files(&schema) {
            std::fs::write(repo_root().join(&g.path), &g.text).unwrap();
        }
        panic!("regenerated {stale:?}: the schema had changed; review and commit them");
    }
    panic!("{stale:?} are stale: run `cargo codegen` and commit");
}

/// The real schema with one attribute added to Fan.
fn with_fan_temperature() -> Vec<SourceFile> {
    real_schema_sources()
        .into_iter()
        .map(|f| {
            // The fan's speed (rpm), not the port's.
            let text = f.text.replace(
                "Units(\"rpm\"), Description(\"Measured speed.\")]\n    uint32 Speed;\n",
                "Units(\"rpm\"), Description(\"Measured speed.\")]\n    uint32 Speed;\n    [Oid(41), Gauge, Units(\"celsius\"), Description(\"Air temperature at the fan.\")]\n    uint32 AirTemperature;\n",
            );
            SourceFile::new(f.path.to_string(), text)
        })
        .collect()
}

#[test]
fn the_freshness_check_fails_when_the_schema_changes_without_regeneration() {
    let schema = compile(&with_fan_temperature()).expect("modified schema compiles");
    let stale = stale_files(&schema, &repo_root());
    assert_eq!(
        stale.len(),
        2,
        "both the MIB and the YANG module are stale: {stale:?}"
    );
}

#[test]
fn an_added_attribute_appears_in_every_backend_with_no_other_edit() {
    let before = compile(&real_schema_sources()).unwrap();
    let after = compile(&with_fan_temperature()).unwrap();

    let rs = rust::generate(&after, "crate");
    assert!(
        rs.contains("pub air_temperature: u32,"),
        "Rust struct field"
    );
    assert!(
        rs.contains("mib_name: \"hcFanAirTemperature\""),
        "Rust metadata"
    );
    assert!(!rust::generate(&before, "crate").contains("air_temperature"));

    let mib = smi::generate(&after);
    assert!(mib.contains("hcFanAirTemperature OBJECT-TYPE\n    SYNTAX      Gauge32\n    UNITS       \"celsius\"\n    MAX-ACCESS  read-only"));
    assert!(mib.contains("::= { hcFanEntry 41 }"));

    let y = yang::generate(&after);
    assert!(y.contains("leaf air-temperature {\n        type yang:gauge32;\n        units \"celsius\";\n        config false;"));

    let fams = metrics::families(&after);
    assert!(
        fams.iter()
            .any(|(n, k, _)| n == "halyard_fan_air_temperature_celsius"
                && *k == metrics::MetricKind::Gauge)
    );

    // Only lines about the new attribute changed in the MIB.
    let old: std::collections::BTreeSet<&str> = smi::generate(&before).leak().lines().collect();
    let added: Vec<&str> = mib.lines().filter(|l| !old.contains(l)).collect();
    assert!(
        added.iter().all(|l| l.contains("AirTemperature")
            || l.contains("Air temperature")
            || l.trim() == "::= { hcFanEntry 41 }"
            // The previous last column gains a comma in SEQUENCE and group.
            || (l.contains("hcFanSpeed") && l.ends_with(','))),
        "unexpected MIB changes: {added:#?}"
    );
}
