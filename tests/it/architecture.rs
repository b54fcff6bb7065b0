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

/// Adapters translate through metadata and the schema's qualifiers: none
/// names a schema class or attribute in a string literal (test code aside).
#[test]
fn no_adapter_names_a_schema_class_or_attribute() {
    let names = schema_names();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for adapter in std::fs::read_dir(root.join("adapters")).expect("adapters/") {
        let src = adapter.expect("adapter dir").path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    files.sort();
    assert!(
        !files.is_empty(),
        "no adapter sources under {}",
        root.display()
    );
    let mut test_files = Vec::new();
    for f in &files {
        test_files.extend(scan(f, &std::fs::read_to_string(f).expect("read source")).test_modules);
    }
    let mut violations = Vec::new();
    for f in &files {
        if test_files
            .iter()
            .any(|t: &std::path::PathBuf| f == t || (t.extension().is_none() && f.starts_with(t)))
        {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read source");
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        for (line, lit) in scan(f, &text).literals {
            if names.contains(lit.as_str()) {
                violations.push(format!("{rel}:{line}: \"{lit}\""));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "string literals naming a schema class or attribute in adapter code (use the Entity, Fru and Role qualifiers or other metadata; see ARCHITECTURE.md, The schema language):\n{}",
        violations.join("\n")
    );
}

/// Every class and attribute name of the schema.
fn schema_names() -> std::collections::BTreeSet<&'static str> {
    let schema = &halyard_cluster_model::SCHEMA;
    schema
        .classes
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.attributes.iter().map(|a| a.name)))
        .collect()
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// What [`scan`] finds in a Rust source file.
#[derive(Debug, Default)]
struct Scanned {
    /// (line, contents) of each string literal outside `#[cfg(test)]` items.
    literals: Vec<(usize, String)>,
    /// Files (`x.rs`) and directories (`x/`) of out-of-line `#[cfg(test)] mod x;`.
    test_modules: Vec<std::path::PathBuf>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Str(String),
    Ident(String),
    Punct(char),
}

/// Splits Rust source into tokens, each with its line; comments, char
/// literals and lifetimes are dropped.
fn tokens(text: &str) -> Vec<(usize, Tok)> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            let start = line;
            let mut s = String::new();
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                    match at(i) {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        '\n' => {
                            // A line continuation: the newline and the
                            // next line's leading blanks are dropped.
                            line += 1;
                            while at(i + 1).is_whitespace() {
                                if at(i + 1) == '\n' {
                                    line += 1;
                                }
                                i += 1;
                            }
                        }
                        other => s.push(other),
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    s.push(c[i]);
                }
                i += 1;
            }
            i += 1;
            out.push((start, Tok::Str(s)));
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime/label ('a).
            if at(i + 1) == '\\' {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let s0 = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[s0..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr");
            if raw && (at(i) == '"' || (at(i) == '#' && matches!(at(i + 1), '"' | '#'))) {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1;
                let start = line;
                let mut s = String::new();
                loop {
                    if i >= c.len() {
                        break;
                    }
                    if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    if c[i] == '\n' {
                        line += 1;
                    }
                    s.push(c[i]);
                    i += 1;
                }
                out.push((start, Tok::Str(s)));
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                // A byte or C string: the next round reads it as a string.
            } else if matches!(word.as_str(), "b") && at(i) == '\'' && at(i + 1) != '\\' {
                i += 3;
            } else {
                out.push((line, Tok::Ident(word)));
            }
        } else {
            out.push((line, Tok::Punct(ch)));
            i += 1;
        }
    }
    out
}

/// The string literals of a file outside `#[cfg(test)]` items, and the
/// files of its out-of-line test modules.
fn scan(path: &std::path::Path, text: &str) -> Scanned {
    let toks = tokens(text);
    let mut out = Scanned::default();
    let punct = |i: usize, p: char| matches!(toks.get(i), Some((_, Tok::Punct(x))) if *x == p);
    let ident = |i: usize, w: &str| matches!(toks.get(i), Some((_, Tok::Ident(x))) if x == w);
    // The end (exclusive) of the bracketed group opening at `i`.
    let group_end = |i: usize| {
        let mut depth = 0usize;
        let mut j = i;
        while j < toks.len() {
            match &toks[j].1 {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        toks.len()
    };
    // `#[cfg(...)]` or `#![cfg(...)]` at `i` whose predicate holds under
    // test only: it names `test` and has no `not`.
    let test_attr = |i: usize| -> Option<(usize, bool)> {
        if !punct(i, '#') {
            return None;
        }
        let inner = punct(i + 1, '!');
        let open = if inner { i + 2 } else { i + 1 };
        if !punct(open, '[') || !ident(open + 1, "cfg") {
            return None;
        }
        let end = group_end(open);
        let words = || toks[open + 2..end].iter().map(|(_, t)| t);
        let test = words().any(|t| *t == Tok::Ident("test".into()))
            && !words().any(|t| *t == Tok::Ident("not".into()));
        test.then_some((end, inner))
    };
    let mut i = 0;
    while i < toks.len() {
        let Some((mut j, inner)) = test_attr(i) else {
            // A `Debug` impl's `f.debug_struct("Slot")` names a Rust type.
            let type_name = i >= 2
                && punct(i - 1, '(')
                && (ident(i - 2, "debug_struct") || ident(i - 2, "debug_tuple"));
            if let (line, Tok::Str(s)) = &toks[i]
                && !type_name
            {
                out.literals.push((*line, s.clone()));
            }
            i += 1;
            continue;
        };
        if inner {
            // `#![cfg(test)]`: the whole file is test code.
            out.test_modules.push(path.to_path_buf());
            break;
        }
        // Further attributes of the same item.
        while punct(j, '#') && punct(j + 1, '[') {
            j = group_end(j + 1);
        }
        // `mod name;` in another file.
        if ident(j, "mod")
            && let Some((_, Tok::Ident(name))) = toks.get(j + 1)
            && punct(j + 2, ';')
        {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let dir = path.parent().expect("source dir");
            let dir = if matches!(stem, "lib" | "main" | "mod") {
                dir.to_path_buf()
            } else {
                dir.join(stem)
            };
            out.test_modules.push(dir.join(format!("{name}.rs")));
            out.test_modules.push(dir.join(name));
        }
        // Skip the item: to its `;` or the end of its first top-level block.
        let mut depth = 0usize;
        while j < toks.len() {
            match &toks[j].1 {
                Tok::Punct(';') if depth == 0 => break,
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']') => depth = depth.saturating_sub(1),
                Tok::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        i = j + 1;
    }
    out
}

#[test]
fn the_literal_scan_skips_test_code_comments_and_chars() {
    let src = r####"
//! "Fan" in a doc comment
fn a() -> &'static str { let _q = '"'; let _e = '\''; "Fan" }
/* "Shelf" /* nested "Port" */ still comment */
const X: &str = r#"Raw "quoted""#;
#[cfg(test)]
mod tests {
    fn b() -> &'static str { "Port" }
    const Y: &[&str] = &["Shelf", "}"];
}
#[cfg(test)]
const Z: &[&str] = &["LineCard"];
#[cfg(not(test))]
const W: &str = "Label";
#[cfg(test)]
#[path = "t.rs"]
mod ext;
fn c() { let _ = b"bytes"; let _ = "multi
line"; let _ = "Slot"; }
fn fmt(f: &mut F) { f.debug_struct("Slot").finish() }
"####;
    let s = scan(std::path::Path::new("src/foo.rs"), src);
    let lits: Vec<(usize, &str)> = s.literals.iter().map(|(l, x)| (*l, x.as_str())).collect();
    assert_eq!(
        lits,
        [
            (3, "Fan"),
            (5, "Raw \"quoted\""),
            (14, "Label"),
            (18, "bytes"),
            (18, "multi\nline"),
            (19, "Slot"),
        ]
    );
    assert_eq!(
        s.test_modules,
        [
            std::path::PathBuf::from("src/foo/ext.rs"),
            std::path::PathBuf::from("src/foo/ext")
        ]
    );
}

/// The resolved graph of normal (not dev, not build) dependencies:
/// package name -> the names it depends on.
fn resolved_graph() -> BTreeMap<String, Vec<String>> {
    // This machine's packages only: they are the ones the build fetched.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc names its host");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = names[node["id"].as_str().unwrap()].to_string();
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| names[d["pkg"].as_str().unwrap()].to_string());
        graph.entry(name).or_default().extend(deps);
    }
    graph
}

/// Every package `root` reaches through normal dependencies.
fn closure(graph: &BTreeMap<String, Vec<String>>, root: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen.into_iter().collect()
}

/// What a crate may not reach even through another crate: a protocol
/// library in the core, persistence in an adapter, the agent anywhere but
/// the tests (it is the top: nothing builds on it).
#[test]
fn no_crate_reaches_what_it_may_not_even_indirectly() {
    let protocol = [
        "rasn",
        "russh",
        "ssh2",
        "axum",
        "hyper",
        "quick-xml",
        "prometheus-client",
    ];
    let persistence = ["sqlx", "sqlx-core", "rusqlite", "libsqlite3-sys"];
    let graph = resolved_graph();
    let ws = workspace();
    let mut violations = Vec::new();
    for (name, (path, _)) in &ws {
        let forbidden: Vec<&str> = match name.as_str() {
            "halyard-backend"
            | "halyard-consensus"
            | "halyard-cluster-model"
            | "halyard-schema" => protocol
                .iter()
                .chain(["halyard-agent"].iter())
                .copied()
                .collect(),
            _ if is_adapter(path) => persistence
                .iter()
                .chain(["halyard-backend", "halyard-consensus", "halyard-agent"].iter())
                .copied()
                .collect(),
            "halyard-tests" | "halyard-agent" => continue,
            _ => vec!["halyard-agent"],
        };
        let reached = closure(&graph, name);
        for f in forbidden {
            if reached.iter().any(|r| r == f) {
                violations.push(format!("{name} reaches {f}"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
    // The check sees through crates: the agent reaches sqlx through the
    // backend, though it does not name it.
    let agent = closure(&graph, "halyard-agent");
    assert!(agent.iter().any(|p| p == "sqlx"), "{agent:?}");
}

/// The standard modules shipped (mib/standard, yang/standard) are
/// byte-exact copies of their published sources: every file is listed in
/// its directory's SOURCES.md with the prefix of its git blob hash, and
/// nothing listed is missing.
#[test]
fn shipped_standard_modules_are_byte_exact_with_their_listed_sources() {
    let root = halyard_tests::workspace();
    for dir in ["mib/standard", "yang/standard"] {
        let dir = root.join(dir);
        let sources = std::fs::read_to_string(dir.join("SOURCES.md")).unwrap();
        let mut listed = 0;
        for line in sources.lines().filter(|l| l.starts_with("| ")) {
            let Some(file) = line.split('|').nth(1).map(str::trim) else {
                continue;
            };
            let Some(blob) = line
                .split("(blob ")
                .nth(1)
                .and_then(|r| r.split(')').next())
            else {
                continue;
            };
            listed += 1;
            let out = Command::new("git")
                .args(["hash-object", "--no-filters"])
                .arg(dir.join(file))
                .output()
                .expect("git");
            assert!(out.status.success(), "{file}: not shipped");
            let hash = String::from_utf8_lossy(&out.stdout);
            assert!(
                hash.starts_with(blob),
                "{}/{file} is not the listed source (blob {blob}, file {hash})",
                dir.display()
            );
        }
        let shipped = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy() != "SOURCES.md")
            })
            .count();
        assert_eq!(
            shipped,
            listed,
            "{}: a file without a source",
            dir.display()
        );
    }
}
