//! The SNMP engine: its ID, boot counter and time (RFC 3411/3414), and
//! the counters every MIB group reads (really counted, never invented).

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use sha2::Digest;

use crate::error::SnmpError;

/// Counters of SNMPv2-MIB, SNMP-MPD-MIB, SNMP-USER-BASED-SM-MIB and of the
/// notification sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    InPkts,
    OutPkts,
    InBadVersions,
    InBadCommunityNames,
    InBadCommunityUses,
    InAsnParseErrs,
    SilentDrops,
    ProxyDrops,
    UnknownSecurityModels,
    InvalidMsgs,
    UnknownPduHandlers,
    UnsupportedSecLevels,
    NotInTimeWindows,
    UnknownUserNames,
    UnknownEngineIds,
    WrongDigests,
    DecryptionErrors,
    UnknownContexts,
    TrapsSent,
    InformsSent,
    InformsAcked,
    InformsTimedOut,
    NotificationsMissed,
}

const N_COUNTERS: usize = Counter::NotificationsMissed as usize + 1;

/// Engine identity and statistics, shared by every task.
#[derive(Debug)]
pub struct Engine {
    pub id: Vec<u8>,
    pub boots: u32,
    started: Instant,
    /// The wall-clock time of this engine's start (the local system's
    /// initialization, for ENTITY-STATE-MIB).
    pub started_at: halyard_cluster_model::Timestamp,
    counters: [AtomicU32; N_COUNTERS],
    /// Time from a request's arrival to its response being sent.
    pub latency: halyard_cluster_model::latency::LatencyHistogram,
}

impl Engine {
    pub fn new(id: Vec<u8>, boots: u32) -> Self {
        Engine {
            id,
            boots,
            started: Instant::now(),
            started_at: halyard_cluster_model::Timestamp::now(),
            counters: std::array::from_fn(|_| AtomicU32::new(0)),
            latency: Default::default(),
        }
    }

    /// Loads the engine ID and boot counter from `path` (creating it), and
    /// records this boot.
    pub fn load(path: Option<&Path>, fixed_id: Option<Vec<u8>>) -> Result<Self, SnmpError> {
        let Some(path) = path else {
            return Ok(Engine::new(fixed_id.unwrap_or_else(generate_id), 1));
        };
        let shown = path.display().to_string();
        let io = |source| SnmpError::EngineState {
            path: shown.clone(),
            source,
        };
        let corrupt = |reason: &str| SnmpError::EngineStateCorrupt {
            path: shown.clone(),
            reason: reason.to_string(),
        };
        let (mut id, mut boots) = (None, 0u32);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match line.split_once(' ') {
                        Some(("engine-id", hex)) => {
                            id = Some(from_hex(hex.trim()).ok_or_else(|| corrupt("bad engine-id"))?)
                        }
                        Some(("boots", n)) => {
                            boots = n.trim().parse().map_err(|_| corrupt("bad boots"))?
                        }
                        _ => return Err(corrupt("unknown line")),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let id = fixed_id.or(id).unwrap_or_else(generate_id);
        if !(5..=32).contains(&id.len()) {
            return Err(corrupt("engine ID must be 5 to 32 octets"));
        }
        // RFC 3414 2.2.2: at 2^31-1 the engine stays there (needs re-keying).
        let boots = boots.saturating_add(1).min(0x7fff_ffff);
        // Durable before the first message carries it (RFC 3414 2.2.2:
        // boots must never repeat with the same keys): the new file is
        // synced, renamed over the old one atomically, and the rename
        // synced too, so a kill -9 or a power cut leaves the old count or
        // the new one, never a torn file or a count that goes back.
        let tmp = path.with_extension("tmp");
        let text = format!("engine-id {}\nboots {boots}\n", to_hex(&id));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(Path::new(".")))
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(Engine::new(id, boots))
    }

    /// snmpEngineTime: seconds since this boot.
    pub fn time(&self) -> u32 {
        self.started.elapsed().as_secs().min(0x7fff_ffff) as u32
    }

    /// sysUpTime: hundredths of a second since start.
    pub fn uptime_ticks(&self) -> u32 {
        (self.started.elapsed().as_millis() / 10) as u32
    }

    pub fn count(&self, c: Counter) {
        self.counters[c as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, c: Counter, n: u32) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, c: Counter) -> u32 {
        self.counters[c as usize].load(Ordering::Relaxed)
    }
}

/// RFC 3411 format 5 (octets) under our enterprise number, with 12 octets
/// derived from the clock and process.
fn generate_id() -> Vec<u8> {
    let mut h = sha2::Sha256::new();
    h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
    h.update(std::process::id().to_be_bytes());
    h.update(format!("{:?}", Instant::now()).as_bytes());
    let d = h.finalize();
    let mut id = vec![0x80, 0x00, 0x7e, 0xd9, 0x05];
    id.extend_from_slice(&d[..12]);
    id
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_start_matches("0x");
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boots_persist_and_increase() {
        let dir = std::env::temp_dir().join(format!("halyard-snmp-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("engine");
        let _ = std::fs::remove_file(&path);
        let a = Engine::load(Some(&path), None).unwrap();
        let b = Engine::load(Some(&path), None).unwrap();
        assert_eq!(a.boots, 1);
        assert_eq!(b.boots, 2);
        assert_eq!(a.id, b.id);
        assert_eq!(&a.id[..5], &[0x80, 0x00, 0x7e, 0xd9, 0x05]);
        std::fs::write(&path, "engine-id zz\n").unwrap();
        assert!(matches!(
            Engine::load(Some(&path), None),
            Err(SnmpError::EngineStateCorrupt { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(from_hex("80007ed905"), Some(vec![0x80, 0, 0x7e, 0xd9, 5]));
        assert_eq!(to_hex(&[1, 0xab]), "01ab");
        assert_eq!(from_hex("abc"), None);
    }
}
