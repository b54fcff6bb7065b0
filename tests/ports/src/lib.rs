//! Ports for tests that start servers (halyard nodes, snmpd, sshd, a python load server).
//!
//! The usual trick, binding `:0` and passing the port on, races: the port comes from the
//! kernel's ephemeral range (32768 and up on Linux), so any outgoing connection made before
//! the server binds may take it. Ports here come from below that range, are checked free on
//! TCP and UDP on both loopback links the clusters use, and are never handed out twice in
//! one process (a cluster's nodes are all configured before any of them binds).

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// First port handed out; the range stays clear of well-known ports and of the ephemeral
/// range.
const LOW: u16 = 10_000;
const SPAN: u16 = 22_000;

/// A port free on TCP and UDP on 127.0.0.1 and 127.0.0.2.
pub fn free_port() -> u16 {
    static SEED: AtomicU64 = AtomicU64::new(0);
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    // Different in every test process, so concurrent test binaries spread out.
    let mut x = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ (u64::from(std::process::id()) << 16)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    loop {
        // xorshift: cheap and good enough to spread ports.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = LOW + (x % u64::from(SPAN)) as u16;
        if !GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            continue;
        }
        let free = ["127.0.0.1", "127.0.0.2"].iter().all(|ip| {
            TcpListener::bind((*ip, port)).is_ok() && UdpSocket::bind((*ip, port)).is_ok()
        });
        if free {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..500).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|p| (LOW..LOW + SPAN).contains(p)));
        assert!(ports.iter().all(|p| *p < 32_768));
    }
}
