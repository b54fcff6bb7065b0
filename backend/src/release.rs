//! Software releases on a node: the two-slot store the software load and
//! propagation managers fill (the seed's FIG. 10 services).
//!
//! A release is a directory with a `manifest.json` (version, and every
//! file with its SHA-256 and size) and the files it names. A node keeps at
//! most two loads, in slots `a` and `b`; the running load and the last
//! committed one are never overwritten. A fetch recognises a version
//! already present (nothing is copied), copies only files whose checksum
//! differs from what the slot holds (incremental propagation), verifies
//! every copied file, and writes the manifest last: a slot without its
//! manifest is not a load. File work runs on the blocking pool.
//!
//! Fail-safe commit: a release to try is *armed* as a trial; the node's
//! boot supervisor (`halyard boot`) boots it once, and unless the running
//! node marks it healthy before the watchdog deadline, the next boot falls
//! back to the committed release by itself. Committing clears the trial.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "manifest.json";
const STATE: &str = "slots.json";
const SLOTS: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path inside the release.
    pub path: String,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    pub size: u64,
    /// Installed executable (a download from an HTTP load server carries
    /// no file modes).
    #[serde(default)]
    pub executable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: String,
    pub files: Vec<FileEntry>,
}

/// Which slot runs, and which version was last committed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotState {
    pub running: Option<String>,
    pub committed: Option<String>,
    /// An uncommitted release to boot once, on probation.
    #[serde(default)]
    pub trial: Option<Trial>,
    /// The last trial that failed, and why (kept for the faces).
    #[serde(default)]
    pub fallback: Option<String>,
}

/// A release on probation (fail-safe commit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub version: String,
    /// The supervisor has booted it once.
    pub booted: bool,
    /// The node running it proved healthy.
    pub healthy: bool,
}

/// What the boot supervisor runs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootChoice {
    pub version: String,
    pub slot: String,
    /// On probation: the watchdog applies.
    pub trial: bool,
    /// A trial just failed: why the committed release boots instead.
    pub fell_back: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a release manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: checksum {actual}, the manifest says {expected}")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "no room for release {version}: slot a holds {a:?}, slot b {b:?}, and neither may be overwritten (running or last committed)"
    )]
    NoRoom {
        version: String,
        a: Option<String>,
        b: Option<String>,
    },
    #[error("no slot holds release {0}")]
    Absent(String),
    #[error("file work did not finish: {0}")]
    Join(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, ReleaseError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Every file below `dir` (directories walked, not listed).
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, ReleaseError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let p = e.map_err(io(&d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// Builds a manifest for a directory's files (the release tool's job).
pub fn manifest_of(dir: &Path, version: &str) -> Result<Manifest, ReleaseError> {
    let mut files = Vec::new();
    for p in files_under(dir)? {
        if p.file_name().is_some_and(|n| n != MANIFEST) {
            let rel = p
                .strip_prefix(dir)
                .map_err(|e| ReleaseError::Manifest {
                    path: p.clone(),
                    reason: e.to_string(),
                })?
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::metadata(&p).map_err(io(&p))?;
            #[cfg(unix)]
            let executable = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            };
            #[cfg(not(unix))]
            let executable = false;
            files.push(FileEntry {
                path: rel,
                sha256: sha256_file(&p)?,
                size: meta.len(),
                executable,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Manifest {
        version: version.to_string(),
        files,
    })
}

fn read_manifest(dir: &Path) -> Result<Manifest, ReleaseError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| ReleaseError::Manifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    // A manifest must not reach outside its release.
    for f in &m.files {
        let p = Path::new(&f.path);
        if p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(ReleaseError::Manifest {
                path,
                reason: format!("file path {} leaves the release", f.path),
            });
        }
    }
    Ok(m)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReleaseError> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub slot: String,
    pub version: String,
    /// The version was there already: nothing was copied.
    pub already_present: bool,
    /// Files copied (the others were already in the slot).
    pub copied: usize,
}

/// A node's two-slot release store.
#[derive(Debug, Clone)]
pub struct ReleaseStore {
    root: PathBuf,
}

impl ReleaseStore {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn slot_dir(&self, slot: &str) -> PathBuf {
        self.root.join(slot)
    }

    /// The version each slot holds (a slot without a valid manifest holds none).
    pub fn slots(&self) -> BTreeMap<String, Option<String>> {
        SLOTS
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    read_manifest(&self.slot_dir(s)).ok().map(|m| m.version),
                )
            })
            .collect()
    }

    pub fn state(&self) -> SlotState {
        std::fs::read_to_string(self.root.join(STATE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn save_state(&self, s: &SlotState) -> Result<(), ReleaseError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let bytes = serde_json::to_vec_pretty(s).unwrap_or_default();
        write_atomic(&self.root.join(STATE), &bytes)
    }

    /// The slot holding `version`, if any.
    pub fn slot_of(&self, version: &str) -> Option<String> {
        self.slots()
            .into_iter()
            .find(|(_, v)| v.as_deref() == Some(version))
            .map(|(s, _)| s)
    }

    /// Records that `version` runs now (after a switch).
    pub fn set_running(&self, version: &str) -> Result<(), ReleaseError> {
        self.slot_of(version)
            .ok_or_else(|| ReleaseError::Absent(version.to_string()))?;
        let mut s = self.state();
        s.running = Some(version.to_string());
        self.save_state(&s)
    }

    /// Commits `version`: the release to fall back to from now on.
    pub fn commit(&self, version: &str) -> Result<(), ReleaseError> {
        self.slot_of(version)
            .ok_or_else(|| ReleaseError::Absent(version.to_string()))?;
        let mut s = self.state();
        s.committed = Some(version.to_string());
        if s.trial.as_ref().is_some_and(|t| t.version == version) {
            s.trial = None;
        }
        self.save_state(&s)
    }

    /// Checks every file of a slot against its manifest.
    /// Installs a node's first release from `source` and commits it, unless
    /// a committed release is already there.
    pub async fn install_initial(&self, source: &Path, version: &str) -> Result<(), ReleaseError> {
        if self.state().committed.is_some() {
            return Ok(());
        }
        self.fetch(source, version).await?;
        self.set_running(version)?;
        self.commit(version)
    }

    /// Arms `version` (already in a slot) to be booted once, on probation.
    /// Arming the committed release disarms any trial instead (rollback).
    pub fn arm_trial(&self, version: &str) -> Result<(), ReleaseError> {
        self.slot_of(version)
            .ok_or_else(|| ReleaseError::Absent(version.to_string()))?;
        let mut s = self.state();
        s.trial = (s.committed.as_deref() != Some(version)).then(|| Trial {
            version: version.to_string(),
            booted: false,
            healthy: false,
        });
        self.save_state(&s)
    }

    /// The running node proved healthy on its trial release.
    pub fn mark_healthy(&self, version: &str) -> Result<(), ReleaseError> {
        let mut s = self.state();
        match &mut s.trial {
            Some(t) if t.version == version && !t.healthy => t.healthy = true,
            _ => return Ok(()),
        }
        self.save_state(&s)
    }

    /// The supervisor saw the trial of `version` fail (it exited, or the
    /// watchdog fired): the next boot is the committed release, and `why`
    /// is kept for the faces.
    pub fn fail_trial(&self, version: &str, why: &str) -> Result<(), ReleaseError> {
        let mut s = self.state();
        if s.trial.as_ref().is_none_or(|t| t.version != version) {
            return Ok(());
        }
        s.trial = None;
        s.fallback = Some(format!("release {version} {why}"));
        self.save_state(&s)
    }

    /// The boot supervisor's decision, recorded before it boots: a trial
    /// boots once; a trial that was booted and has not been committed
    /// (whether or not it was healthy) falls back to the committed release.
    pub fn boot_choice(&self) -> Result<BootChoice, ReleaseError> {
        let mut s = self.state();
        let mut fell_back = None;
        if let Some(t) = s.trial.take() {
            if !t.booted && self.slot_of(&t.version).is_some() {
                s.trial = Some(Trial {
                    booted: true,
                    ..t.clone()
                });
                s.running = Some(t.version.clone());
                self.save_state(&s)?;
                let slot = self.slot_of(&t.version).expect("slot checked");
                return Ok(BootChoice {
                    version: t.version,
                    slot,
                    trial: true,
                    fell_back: None,
                });
            }
            let why = if t.healthy {
                format!("release {} stopped before it was committed", t.version)
            } else {
                format!(
                    "release {} did not become healthy before the watchdog deadline",
                    t.version
                )
            };
            s.fallback = Some(why.clone());
            fell_back = Some(why);
        }
        let version = s
            .committed
            .clone()
            .or_else(|| s.running.clone())
            .ok_or_else(|| ReleaseError::Absent("(no committed release)".into()))?;
        let slot = self
            .slot_of(&version)
            .ok_or_else(|| ReleaseError::Absent(version.clone()))?;
        s.running = Some(version.clone());
        self.save_state(&s)?;
        Ok(BootChoice {
            version,
            slot,
            trial: false,
            fell_back,
        })
    }

    /// A slot's manifest, unverified.
    pub fn manifest(&self, slot: &str) -> Result<Manifest, ReleaseError> {
        read_manifest(&self.slot_dir(slot))
    }

    pub fn verify(&self, slot: &str) -> Result<Manifest, ReleaseError> {
        let dir = self.slot_dir(slot);
        let m = read_manifest(&dir)?;
        for f in &m.files {
            let p = dir.join(&f.path);
            let actual = sha256_file(&p)?;
            if actual != f.sha256 {
                return Err(ReleaseError::Checksum {
                    path: p,
                    expected: f.sha256.clone(),
                    actual,
                });
            }
        }
        Ok(m)
    }

    /// Fetches release `version` from `source` (a release directory: a load
    /// server's, or another node's slot for propagation) into a slot that
    /// is neither running nor committed, copying only what differs.
    pub async fn fetch(&self, source: &Path, version: &str) -> Result<Fetched, ReleaseError> {
        let store = self.clone();
        let source = source.to_path_buf();
        let version = version.to_string();
        tokio::task::spawn_blocking(move || store.fetch_blocking(&source, &version))
            .await
            .map_err(|e| ReleaseError::Join(e.to_string()))?
    }

    fn fetch_blocking(&self, source: &Path, version: &str) -> Result<Fetched, ReleaseError> {
        let m = read_manifest(source)?;
        if m.version != version {
            return Err(ReleaseError::Manifest {
                path: source.join(MANIFEST),
                reason: format!("it is release {}, not {version}", m.version),
            });
        }
        if let Some(slot) = self.slot_of(version)
            && self.verify(&slot).is_ok()
        {
            return Ok(Fetched {
                slot,
                version: version.to_string(),
                already_present: true,
                copied: 0,
            });
        }
        let state = self.state();
        let slots = self.slots();
        let keep = |v: &Option<String>| {
            v.is_some() && (v.as_ref() == state.running.as_ref() || *v == state.committed)
        };
        // An empty slot first, else one that holds neither kept release.
        let slot = slots
            .iter()
            .find(|(_, v)| v.is_none())
            .or_else(|| slots.iter().find(|(_, v)| !keep(v)))
            .map(|(s, _)| s.clone())
            .ok_or_else(|| ReleaseError::NoRoom {
                version: version.to_string(),
                a: slots.get("a").cloned().flatten(),
                b: slots.get("b").cloned().flatten(),
            })?;
        let dir = self.slot_dir(&slot);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // No manifest while the slot is being filled: it is no load.
        let manifest = dir.join(MANIFEST);
        if manifest.exists() {
            std::fs::remove_file(&manifest).map_err(io(&manifest))?;
        }
        let mut copied = 0;
        for f in &m.files {
            let to = dir.join(&f.path);
            if to.exists() && sha256_file(&to)? == f.sha256 {
                continue;
            }
            let from = source.join(&f.path);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let tmp = to.with_extension("part");
            std::fs::copy(&from, &tmp).map_err(io(&from))?;
            let actual = sha256_file(&tmp)?;
            if actual != f.sha256 {
                let _ = std::fs::remove_file(&tmp);
                return Err(ReleaseError::Checksum {
                    path: from,
                    expected: f.sha256.clone(),
                    actual,
                });
            }
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io(&tmp))?;
            std::fs::rename(&tmp, &to).map_err(io(&to))?;
            copied += 1;
        }
        // Files the new release does not have go.
        let wanted: std::collections::BTreeSet<PathBuf> =
            m.files.iter().map(|f| dir.join(&f.path)).collect();
        for p in files_under(&dir)? {
            if !wanted.contains(&p) {
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        let bytes = serde_json::to_vec_pretty(&m).unwrap_or_default();
        write_atomic(&manifest, &bytes)?;
        Ok(Fetched {
            slot,
            version: version.to_string(),
            already_present: false,
            copied,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(dir: &Path, version: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = dir.join(format!("server/{version}"));
        for (p, content) in files {
            let f = d.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, content).unwrap();
        }
        let m = manifest_of(&d, version).unwrap();
        std::fs::write(d.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        d
    }

    #[tokio::test]
    async fn two_slots_incremental_copies_and_kept_releases() {
        let t = tempfile::tempdir().unwrap();
        let r1 = release(t.path(), "1", &[("bin/halyard", "one"), ("etc/conf", "c")]);
        let r2 = release(t.path(), "2", &[("bin/halyard", "two"), ("etc/conf", "c")]);
        let r3 = release(t.path(), "3", &[("bin/halyard", "three")]);
        let store = ReleaseStore::new(&t.path().join("node"));

        let f = store.fetch(&r1, "1").await.unwrap();
        assert_eq!(
            (f.slot.as_str(), f.copied, f.already_present),
            ("a", 2, false)
        );
        // Already present: nothing copied.
        let again = store.fetch(&r1, "1").await.unwrap();
        assert!(again.already_present);
        assert_eq!(again.copied, 0);
        store.set_running("1").unwrap();
        store.commit("1").unwrap();

        let f2 = store.fetch(&r2, "2").await.unwrap();
        assert_eq!(f2.slot, "b");
        store.verify("b").unwrap();
        // Release 3 may replace 2 (neither running nor committed), not 1.
        let f3 = store.fetch(&r3, "3").await.unwrap();
        assert_eq!(f3.slot, "b");
        assert_eq!(f3.copied, 1, "only the changed file is copied");
        assert!(
            !store.slot_dir("b").join("etc/conf").exists(),
            "stale files go"
        );
        assert_eq!(store.slots()["a"].as_deref(), Some("1"));

        // Running 3 with 1 committed: no slot may take release 2.
        store.set_running("3").unwrap();
        let err = store.fetch(&r2, "2").await.unwrap_err();
        assert!(matches!(err, ReleaseError::NoRoom { .. }), "{err}");
        // Once 3 is committed, 1 may go.
        store.commit("3").unwrap();
        let f = store.fetch(&r2, "2").await.unwrap();
        assert_eq!(f.slot, "a");
        // Propagation: a peer's slot is a source like any other.
        let peer = ReleaseStore::new(&t.path().join("peer"));
        let p = peer.fetch(&store.slot_dir("a"), "2").await.unwrap();
        assert_eq!(p.copied, 2);
        peer.verify(&p.slot).unwrap();
    }

    #[tokio::test]
    async fn a_trial_boots_once_and_falls_back_unless_committed() {
        let t = tempfile::tempdir().unwrap();
        let r1 = release(t.path(), "1", &[("bin/halyard", "one")]);
        let r2 = release(t.path(), "2", &[("bin/halyard", "two")]);
        let store = ReleaseStore::new(&t.path().join("node"));
        store.install_initial(&r1, "1").await.unwrap();
        assert_eq!(store.boot_choice().unwrap().version, "1");
        store.fetch(&r2, "2").await.unwrap();
        store.arm_trial("2").unwrap();
        let b = store.boot_choice().unwrap();
        assert_eq!((b.version.as_str(), b.trial), ("2", true));
        // Not marked healthy: the next boot is the committed release.
        let b = store.boot_choice().unwrap();
        assert_eq!((b.version.as_str(), b.trial), ("1", false));
        assert!(b.fell_back.unwrap().contains("watchdog"));
        assert_eq!(store.state().running.as_deref(), Some("1"));
        // Healthy and committed: it stays.
        store.arm_trial("2").unwrap();
        store.boot_choice().unwrap();
        store.mark_healthy("2").unwrap();
        store.commit("2").unwrap();
        let b = store.boot_choice().unwrap();
        assert_eq!(
            (b.version.as_str(), b.trial, b.fell_back),
            ("2", false, None)
        );
        // Arming the committed release is a rollback: nothing on probation.
        store.arm_trial("2").unwrap();
        assert_eq!(store.state().trial, None);
    }

    #[tokio::test]
    async fn corrupt_or_hostile_releases_are_refused_and_leave_no_load() {
        let t = tempfile::tempdir().unwrap();
        let r1 = release(t.path(), "1", &[("bin/halyard", "one")]);
        std::fs::write(r1.join("bin/halyard"), "tampered").unwrap();
        let store = ReleaseStore::new(&t.path().join("node"));
        let err = store.fetch(&r1, "1").await.unwrap_err();
        assert!(matches!(err, ReleaseError::Checksum { .. }), "{err}");
        assert_eq!(store.slots()["a"], None, "a half-filled slot is no load");

        let evil = t.path().join("server/evil");
        std::fs::create_dir_all(&evil).unwrap();
        let m = Manifest {
            version: "evil".into(),
            files: vec![FileEntry {
                path: "../../outside".into(),
                sha256: String::new(),
                size: 0,
                executable: false,
            }],
        };
        std::fs::write(evil.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        let err = store.fetch(&evil, "evil").await.unwrap_err();
        assert!(err.to_string().contains("leaves the release"), "{err}");
        // Asking for a version the source is not.
        let r2 = release(t.path(), "2", &[("x", "y")]);
        assert!(store.fetch(&r2, "3").await.is_err());
    }
}
