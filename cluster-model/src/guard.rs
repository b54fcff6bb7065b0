//! Failed authentications per source address, shared by the faces that
//! take passwords over TCP (HTTP, NETCONF): after a few free failures a
//! source is refused for a while, doubling with each further failure, so
//! a password-guessing run is slowed to a crawl while every other client
//! is served as before. A success forgets the source's failures.
//!
//! The guard decides on addresses the transport vouches for. SNMP over UDP
//! is not guarded: a spoofed source address would let anyone lock the
//! element's managers out (see ARCHITECTURE.md, "Access").

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The policy of a [`FailureGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardPolicy {
    /// Failures a source may make before it is refused at all.
    pub free_failures: u32,
    /// The first refusal period; each further failure doubles it.
    pub base: Duration,
    /// The longest refusal period.
    pub max: Duration,
    /// A source with no failure for this long is forgotten.
    pub forget_after: Duration,
    /// Sources remembered at most (the oldest are forgotten first).
    pub capacity: usize,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        GuardPolicy {
            free_failures: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            forget_after: Duration::from_secs(600),
            capacity: 8192,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Source {
    failures: u32,
    last: Instant,
    refused_until: Option<Instant>,
}

/// What became of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The source may try again at once.
    Free { failures: u32 },
    /// The source is refused for this long (it just became so).
    Refused { failures: u32, for_: Duration },
}

/// Failed authentications per source address (see the module).
#[derive(Debug)]
pub struct FailureGuard {
    policy: GuardPolicy,
    sources: Mutex<HashMap<IpAddr, Source>>,
}

impl FailureGuard {
    pub fn new(policy: GuardPolicy) -> Self {
        FailureGuard {
            policy,
            sources: Mutex::new(HashMap::new()),
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Source>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` while `ip` is refused: the face answers at once, without
    /// looking at the credentials.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.sources().get(&ip).and_then(|s| s.refused_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed authentication of `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Verdict {
        let p = self.policy;
        let mut sources = self.sources();
        if sources.len() >= p.capacity && !sources.contains_key(&ip) {
            sources.retain(|_, s| now.saturating_duration_since(s.last) < p.forget_after);
            if sources.len() >= p.capacity
                && let Some(oldest) = sources.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k)
            {
                sources.remove(&oldest);
            }
        }
        let s = sources.entry(ip).or_insert(Source {
            failures: 0,
            last: now,
            refused_until: None,
        });
        if now.saturating_duration_since(s.last) >= p.forget_after {
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        s.last = now;
        if s.failures <= p.free_failures {
            return Verdict::Free {
                failures: s.failures,
            };
        }
        let doublings = (s.failures - p.free_failures - 1).min(20);
        let for_ = p.base.saturating_mul(1 << doublings).min(p.max);
        s.refused_until = Some(now + for_);
        Verdict::Refused {
            failures: s.failures,
            for_,
        }
    }

    /// A successful authentication of `ip`: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        self.sources().remove(&ip);
    }

    /// Sources remembered now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.sources().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for FailureGuard {
    fn default() -> Self {
        FailureGuard::new(GuardPolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn free_failures_then_doubling_refusals_capped_and_forgotten_on_success() {
        let g = FailureGuard::default();
        let t0 = Instant::now();
        for i in 1..=5 {
            assert_eq!(g.failed(ip(1), t0), Verdict::Free { failures: i });
            assert_eq!(g.check(ip(1), t0), Ok(()));
        }
        assert_eq!(
            g.failed(ip(1), t0),
            Verdict::Refused {
                failures: 6,
                for_: Duration::from_secs(1)
            }
        );
        assert_eq!(g.check(ip(1), t0), Err(Duration::from_secs(1)));
        // Another source is not affected.
        assert_eq!(g.check(ip(2), t0), Ok(()));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(g.check(ip(1), t1), Ok(()));
        assert_eq!(
            g.failed(ip(1), t1),
            Verdict::Refused {
                failures: 7,
                for_: Duration::from_secs(2)
            }
        );
        let mut t = t1;
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            if let Verdict::Refused { for_, .. } = g.failed(ip(1), t) {
                last = for_;
                t += for_;
            }
        }
        assert_eq!(last, Duration::from_secs(60));
        g.succeeded(ip(1));
        assert_eq!(g.check(ip(1), t), Ok(()));
        assert_eq!(g.failed(ip(1), t), Verdict::Free { failures: 1 });
    }

    #[test]
    fn an_idle_source_is_forgotten_and_memory_is_bounded() {
        let g = FailureGuard::new(GuardPolicy {
            capacity: 3,
            ..GuardPolicy::default()
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            g.failed(ip(1), t0);
        }
        let later = t0 + Duration::from_secs(601);
        assert_eq!(g.failed(ip(1), later), Verdict::Free { failures: 1 });
        for n in 2..10 {
            g.failed(ip(n), later + Duration::from_secs(u64::from(n)));
        }
        assert_eq!(g.len(), 3);
    }
}
