//! Checks a message trace (`NetconfConfig::trace_dir`) with libyang's
//! `yanglint` against the modules the server serves: every reply against
//! its rpc (`-t nc-reply`), the data of every `<get>` and `<get-config>`
//! reply (`-t get` / `-t getconfig`: ietf-netconf models `data` as
//! anyxml), and every notification (`-t nc-notif`). The tests of this crate
//! and of the workspace run it over everything a test run sent.
//!
//! An rpc that yanglint itself rejects (the tests send malformed ones on
//! purpose; some clients bend the schema) has no schema to check its reply
//! against; that reply must be a well-formed `<ok/>` or `<rpc-error>`.
//! Blocking: it runs `yanglint` processes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::xml::{self, Element};
use crate::{BASE_NS, SCHEMA_TEXT};

/// The modules a trace is checked against: every module the server
/// implements, from `yang/` and `yang/standard/` of the workspace (`yang`
/// is that directory).
fn modules(yang: &Path) -> Vec<PathBuf> {
    let ours = &halyard_cluster_model::SCHEMA.module;
    crate::monitoring::modules()
        .iter()
        .filter(|m| m.implement)
        .map(|m| {
            let file = format!("{}@{}.yang", m.name, m.revision);
            if m.name == ours.yang_module || m.name == halyard_cluster_model::alarm_types::NAME {
                yang.join(file)
            } else {
                yang.join("standard").join(file)
            }
        })
        .collect()
}

/// Validates `<get>` content (top-level data elements) against every
/// module the server implements, as the trace check does (unit tests).
#[cfg(test)]
pub(crate) fn check_get_content(xml: &str) -> Result<(), String> {
    let yang = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../yang");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let f = dir.path().join("data.xml");
    std::fs::write(&f, xml).map_err(|e| e.to_string())?;
    yanglint(&yang, &os(&["-t", "get", "-f", "xml"]), &[&f])
}

fn os<'a>(v: &[&'a str]) -> Vec<&'a std::ffi::OsStr> {
    v.iter().map(|s| std::ffi::OsStr::new(*s)).collect()
}

fn yanglint(yang: &Path, args: &[&std::ffi::OsStr], files: &[&Path]) -> Result<(), String> {
    let out = Command::new("yanglint")
        .arg("-p")
        .arg(yang)
        .arg("-p")
        .arg(yang.join("standard"))
        .args(args)
        .args(modules(yang))
        .args(files)
        .output()
        .map_err(|e| format!("cannot run yanglint: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The text between `<data>` and `</data>` of a reply, as sent.
fn data_content(reply: &str) -> Option<&str> {
    let start = reply
        .find("<data>")
        .map(|i| i + "<data>".len())
        .or_else(|| {
            let i = reply.find("<data ")?;
            Some(i + reply[i..].find('>')? + 1)
        })?;
    let end = reply.rfind("</data>")?;
    (start <= end).then(|| &reply[start..end])
}

/// What a trace check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Replies checked against their rpc, data sets, notifications.
    pub replies: usize,
    pub data: usize,
    pub notifications: usize,
    /// Replies to rpcs yanglint rejects (each an rpc-error).
    pub refused: usize,
    /// One line per failure: the file and yanglint's words.
    pub failures: Vec<String>,
}

impl Report {
    /// Whether yanglint accepted everything.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }

    /// The counts and every failure, for a test's assertion message.
    pub fn summary(&self) -> String {
        format!(
            "yanglint rejects {} of {} replies ({} data sets, {} notifications checked):\n{}",
            self.failures.len(),
            self.replies + self.refused,
            self.data,
            self.notifications,
            self.failures.join("\n")
        )
    }
}

/// For an ietf-hardware notification that names a component, a data file
/// (beside it, `-notif.operational.xml`) with that component and its
/// admin-state: the targets of the notification's leafrefs.
fn hardware_reference(notif: &Path) -> Option<PathBuf> {
    use crate::hardware::{HARDWARE_NS, IANA_HW_NS};
    let text = std::fs::read_to_string(notif).ok()?;
    let doc = xml::parse(&text, 64).ok()?;
    let ev = doc
        .children
        .iter()
        .find(|c| c.ns == HARDWARE_NS && c.name.starts_with("hardware-state-oper-"))?;
    let mut c = Element::new(HARDWARE_NS, "component");
    c.push(Element::with_text(
        HARDWARE_NS,
        "name",
        ev.find(HARDWARE_NS, "name")?.trimmed(),
    ));
    let mut class = Element::with_text(HARDWARE_NS, "class", "ianahw:unknown");
    class
        .attrs
        .push((xml::XMLNS_DECL.into(), "ianahw".into(), IANA_HW_NS.into()));
    c.push(class);
    if let Some(a) = ev.find(HARDWARE_NS, "admin-state") {
        let mut st = Element::new(HARDWARE_NS, "state");
        st.push(Element::with_text(HARDWARE_NS, "admin-state", a.trimmed()));
        c.push(st);
    }
    let mut hw = Element::new(HARDWARE_NS, "hardware");
    hw.push(c);
    let path = notif.with_extension("operational.xml");
    std::fs::write(&path, hw.to_xml()).ok()?;
    Some(path)
}

/// Checks every message of the trace in `dir`; `yang` is the workspace's
/// `yang/` directory.
pub fn check_trace(dir: &Path, yang: &Path) -> Report {
    let mut r = Report::default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            r.failures.push(format!("{}: {e}", dir.display()));
            return r;
        }
    };
    files.sort();
    // The module text the binary serves is the file we check against.
    let ours = &halyard_cluster_model::SCHEMA.module;
    let ours_file = yang.join(format!("{}@{}.yang", ours.yang_module, ours.revision));
    if std::fs::read_to_string(&ours_file).ok().as_deref() != Some(SCHEMA_TEXT) {
        r.failures.push(format!(
            "{} differs from the module the server serves",
            ours_file.display()
        ));
    }
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        if name.ends_with("-notif.xml") {
            r.notifications += 1;
            let mut args = os(&["-t", "nc-notif", "-f", "xml"]);
            // ietf-hardware's oper-enabled/-disabled refer (leafref) to the
            // component: the operational data it needs holds that component
            // as the notification names it (whether the name is one of
            // /hardware's is the end-to-end tests' to check).
            let operational = hardware_reference(f);
            if let Some(o) = &operational {
                args.push(std::ffi::OsStr::new("-O"));
                args.push(o.as_os_str());
            }
            if let Err(e) = yanglint(yang, &args, &[f]) {
                r.failures.push(format!("{name}: {e}"));
            }
            continue;
        }
        let Some(stem) = name.strip_suffix("-reply.xml") else {
            continue;
        };
        let rpc = dir.join(format!("{stem}-rpc.xml"));
        let reply_text = std::fs::read_to_string(f).unwrap_or_default();
        if let Err(why) = yanglint(yang, &os(&["-t", "nc-rpc", "-f", "xml"]), &[&rpc]) {
            // No schema for the reply: the server may refuse the request or
            // be lenient (ncclient puts create-subscription's filter in the
            // base namespace), but it must not answer with data.
            r.refused += 1;
            let plain = xml::parse(&reply_text, 256).is_ok_and(|e| {
                e.ns == BASE_NS
                    && e.name == "rpc-reply"
                    && !e.children.is_empty()
                    && e.children
                        .iter()
                        .all(|c| c.ns == BASE_NS && matches!(c.name.as_str(), "ok" | "rpc-error"))
            });
            if !plain {
                let req = std::fs::read_to_string(&rpc).unwrap_or_default();
                r.failures.push(format!(
                    "{name}: the rpc is invalid ({}) and the reply is neither <ok/> nor an rpc-error: {req}",
                    why.trim()
                ));
            }
            continue;
        }
        r.replies += 1;
        if let Err(e) = yanglint(
            yang,
            &[
                os(&["-t", "nc-reply", "-f", "xml", "-R"]),
                vec![rpc.as_os_str()],
            ]
            .concat(),
            &[f],
        ) {
            r.failures.push(format!("{name}: {e}"));
            continue;
        }
        // The data of get and get-config, against the modules.
        let op = std::fs::read_to_string(&rpc)
            .ok()
            .and_then(|t| xml::parse(&t, 256).ok())
            .and_then(|e| e.children.first().cloned());
        let kind = match op {
            Some(o) if o.ns == BASE_NS && o.name == "get" => "get",
            Some(o) if o.ns == BASE_NS && o.name == "get-config" => "getconfig",
            // <get-data>: operational as <get>, a configuration datastore
            // as <get-config>.
            Some(o) if o.ns == crate::NMDA_NS && o.name == "get-data" => {
                let operational = o
                    .find(crate::NMDA_NS, "datastore")
                    .is_some_and(|d| d.trimmed().ends_with("operational"));
                if operational { "get" } else { "getconfig" }
            }
            _ => continue,
        };
        let Ok(reply) = xml::parse(&reply_text, 256) else {
            r.failures.push(format!("{name}: not well-formed"));
            continue;
        };
        if reply
            .find(BASE_NS, "data")
            .or_else(|| reply.find(crate::NMDA_NS, "data"))
            .is_none_or(|d| d.children.is_empty())
        {
            continue;
        }
        // The content as sent (each top element declares its namespaces).
        let Some(body) = data_content(&reply_text) else {
            r.failures.push(format!("{name}: no <data> element"));
            continue;
        };
        let data_file = dir.join(format!("{stem}-data.xml"));
        if let Err(e) = std::fs::write(&data_file, body) {
            r.failures.push(format!("{name}: {e}"));
            continue;
        }
        r.data += 1;
        if let Err(e) = yanglint(yang, &os(&["-t", kind, "-f", "xml"]), &[&data_file]) {
            r.failures.push(format!("{name} (data): {e}"));
        }
    }
    r
}
