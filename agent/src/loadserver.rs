//! Where releases come from: a directory, or an HTTP server with the same
//! layout (`<base>/<version>/manifest.json` and the files it names). An
//! HTTP release is downloaded into `<releases>/download/<version>` first —
//! incrementally: a file whose checksum this node already has (in the
//! download or at the same path in a slot) is not downloaded again — and
//! each file is verified before the release store takes it.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use halyard_backend::release::{MANIFEST, Manifest, ReleaseStore, sha256_file};

const MANIFEST_LIMIT: usize = 4 << 20;
const FILE_LIMIT: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadServer {
    Dir(PathBuf),
    Http(String),
}

impl LoadServer {
    pub fn new(s: &str) -> LoadServer {
        if s.starts_with("http://") {
            LoadServer::Http(s.trim_end_matches('/').to_string())
        } else {
            LoadServer::Dir(PathBuf::from(s))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            LoadServer::Dir(d) => d.display().to_string(),
            LoadServer::Http(u) => u.clone(),
        }
    }

    async fn manifest(&self, version: &str) -> Result<Manifest, String> {
        let bytes = match self {
            LoadServer::Dir(d) => {
                let p = d.join(version).join(MANIFEST);
                tokio::fs::read(&p)
                    .await
                    .map_err(|e| format!("{}: {e}", p.display()))?
            }
            LoadServer::Http(u) => {
                let url = format!("{u}/{version}/{MANIFEST}");
                halyard_http::client::get(&url, MANIFEST_LIMIT, Duration::from_secs(10))
                    .await
                    .map_err(|e| e.to_string())?
                    .to_vec()
            }
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("release {version}: not a release manifest: {e}"))?;
        if m.version != version {
            return Err(format!(
                "release {version}: the manifest says {}",
                m.version
            ));
        }
        for f in &m.files {
            let p = Path::new(&f.path);
            if p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(format!(
                    "release {version}: file path {} leaves the release",
                    f.path
                ));
            }
        }
        Ok(m)
    }

    /// Whether the server has `version`.
    pub async fn has(&self, version: &str) -> bool {
        self.manifest(version).await.is_ok()
    }

    /// A local directory holding `version`, for [`ReleaseStore::fetch`].
    pub async fn local(&self, version: &str, store: &ReleaseStore) -> Result<PathBuf, String> {
        let base = match self {
            LoadServer::Dir(d) => return Ok(d.join(version)),
            LoadServer::Http(u) => u.clone(),
        };
        let m = self.manifest(version).await?;
        let dir = store.slot_dir("download").join(version);
        let slots: Vec<PathBuf> = ["a", "b"].iter().map(|s| store.slot_dir(s)).collect();
        for f in &m.files {
            let to = dir.join(&f.path);
            let want = f.sha256.clone();
            // Already here, or in a slot: no download.
            let local = {
                let (to, want, slots, path) =
                    (to.clone(), want.clone(), slots.clone(), f.path.clone());
                tokio::task::spawn_blocking(move || -> Result<bool, String> {
                    if sha256_file(&to).is_ok_and(|s| s == want) {
                        return Ok(true);
                    }
                    for s in &slots {
                        let from = s.join(&path);
                        if sha256_file(&from).is_ok_and(|s| s == want) {
                            if let Some(p) = to.parent() {
                                std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
                            }
                            std::fs::copy(&from, &to).map_err(|e| e.to_string())?;
                            return Ok(true);
                        }
                    }
                    Ok(false)
                })
                .await
                .map_err(|e| e.to_string())??
            };
            if local {
                continue;
            }
            let url = format!("{base}/{version}/{}", f.path);
            if let Some(p) = to.parent() {
                tokio::fs::create_dir_all(p)
                    .await
                    .map_err(|e| format!("{}: {e}", p.display()))?;
            }
            // Streamed to disk under a temporary name, then verified: a
            // release file is never held in memory whole.
            let tmp = to.with_extension("part");
            halyard_http::client::download(&url, &tmp, FILE_LIMIT, Duration::from_secs(300))
                .await
                .map_err(|e| e.to_string())?;
            let path = f.path.clone();
            let executable = f.executable;
            tokio::task::spawn_blocking(move || -> Result<(), String> {
                let got = sha256_file(&tmp).map_err(|e| e.to_string())?;
                if got != want {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(format!("{path}: checksum {got}, the manifest says {want}"));
                }
                #[cfg(unix)]
                if executable {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755));
                }
                std::fs::rename(&tmp, &to).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??;
        }
        let manifest = serde_json::to_vec_pretty(&m).map_err(|e| e.to_string())?;
        tokio::fs::write(dir.join(MANIFEST), manifest)
            .await
            .map_err(|e| e.to_string())?;
        Ok(dir)
    }
}
