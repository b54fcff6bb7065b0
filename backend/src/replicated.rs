//! Replicated changes: configuration and history that every node applies in
//! log order (through the consensus log in a cluster, straight away on one
//! node), kept in memory for the agent's readers.
//!
//! The backend does not know what a change means: the application (the
//! agent's `Replicated` enum) gives each change a topic, a body and a
//! [`Retention`], and the same retention bounds both this in-memory list and
//! the consensus snapshots. Readers hold a cursor, the index of the last
//! entry they read (the raft log index in a cluster), so a snapshot install,
//! which empties the list and replays the snapshot's entries with their
//! original indices, never makes a reader skip or repeat an entry.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

pub use halyard_consensus::Retention;

/// One replicated change as proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// What the body is (the reader decodes it by this).
    pub topic: String,
    /// How long it is kept (in memory and in snapshots).
    #[serde(default)]
    pub retention: Retention,
    pub body: serde_json::Value,
    /// Applied only when the newest kept change of a topic is as expected
    /// (compare-and-set), so a writer that read a lagging replica, or
    /// whose proposal waited in a queue or behind a pause, cannot put back
    /// state that newer changes superseded. Every node decides the same,
    /// from the same kept entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expected>,
}

/// What a conditional [`Change`] expects to follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    pub topic: String,
    /// The newest kept change's body; None: there is none.
    pub body: Option<serde_json::Value>,
}

/// The body of a [`crate::core::RELAYED_ALARM`] change: an alarm of a
/// non-peer node that a proxy relays to every node (no severity: a clear).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayedAlarm {
    pub resource: String,
    /// `ProbableCause` value.
    pub cause: u32,
    /// `PerceivedSeverity` value; None: the alarm clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One replicated change as applied: its place in the order and the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The raft log index in a cluster; a running number on one node.
    pub index: u64,
    pub topic: String,
    pub body: serde_json::Value,
}

/// What a reader gets for its cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Since {
    /// The kept entries after the cursor, in order.
    pub entries: Vec<Entry>,
    /// History entries after the cursor were dropped (retention) before
    /// this reader read them: it lagged by more than the bound.
    pub missed: bool,
}

/// The applied replicated changes, bounded by each change's retention.
#[derive(Debug, Default)]
pub struct ReplicatedLog {
    entries: BTreeMap<u64, Entry>,
    latest: HashMap<String, u64>,
    recent: HashMap<String, VecDeque<u64>>,
    /// The newest index of a history entry dropped for its bound.
    dropped: u64,
    /// The last index given to a change applied without a log (one node).
    local: u64,
}

impl ReplicatedLog {
    /// The index for a change applied on one node, without a log.
    pub fn next_local(&mut self) -> u64 {
        self.local = self.local.max(self.last_index()) + 1;
        self.local
    }

    fn last_index(&self) -> u64 {
        self.entries.keys().next_back().copied().unwrap_or(0)
    }

    /// Keeps `change` at `index` (increasing), dropping what it supersedes
    /// or pushes out of its bound.
    pub fn push(&mut self, index: u64, change: Change) {
        match change.retention {
            Retention::Keep => {}
            Retention::Latest(key) => {
                if let Some(old) = self.latest.insert(key, index) {
                    self.entries.remove(&old);
                }
            }
            Retention::Recent { class, keep } => {
                let kept = self.recent.entry(class).or_default();
                kept.push_back(index);
                while kept.len() > keep.max(1) {
                    if let Some(old) = kept.pop_front() {
                        self.entries.remove(&old);
                        self.dropped = self.dropped.max(old);
                    }
                }
            }
        }
        self.entries.insert(
            index,
            Entry {
                index,
                topic: change.topic,
                body: change.body,
            },
        );
    }

    /// Whether `change` may be applied now: its [`Change::expect`], if
    /// any, names the newest kept change of its topic.
    pub fn precondition(&self, change: &Change) -> Result<(), String> {
        let Some(expected) = &change.expect else {
            return Ok(());
        };
        let newest = self
            .entries
            .values()
            .rev()
            .find(|e| e.topic == expected.topic)
            .map(|e| &e.body);
        if newest == expected.body.as_ref() {
            Ok(())
        } else {
            Err(format!(
                "not applied: the newest {} change is not the one this write followed (a newer one superseded it)",
                expected.topic
            ))
        }
    }

    /// The entries after `cursor` (the index of the last entry read; 0 for
    /// none).
    pub fn since(&self, cursor: u64) -> Since {
        Since {
            entries: self
                .entries
                .range(cursor.saturating_add(1)..)
                .map(|(_, e)| e.clone())
                .collect(),
            missed: cursor < self.dropped,
        }
    }

    /// A snapshot is about to be installed: its entries are applied next,
    /// with their own indices, so readers' cursors stay valid.
    pub fn reset(&mut self) {
        self.entries.clear();
        self.latest.clear();
        self.recent.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(topic: &str, retention: Retention, n: u64) -> Change {
        Change {
            topic: topic.into(),
            retention,
            body: serde_json::json!(n),
            expect: None,
        }
    }

    fn audit(n: u64) -> Change {
        change(
            "audit",
            Retention::Recent {
                class: "audit".into(),
                keep: 3,
            },
            n,
        )
    }

    fn bodies(s: &Since) -> Vec<u64> {
        s.entries.iter().map(|e| e.body.as_u64().unwrap()).collect()
    }

    #[test]
    fn history_is_bounded_and_a_lagging_reader_is_told() {
        let mut log = ReplicatedLog::default();
        for n in 1..=10 {
            log.push(n * 2, audit(n));
        }
        assert_eq!(log.len(), 3);
        let all = log.since(0);
        assert_eq!(bodies(&all), vec![8, 9, 10]);
        assert!(all.missed, "entries 1..7 were dropped before it read them");
        let recent = log.since(16);
        assert_eq!(bodies(&recent), vec![9, 10]);
        assert!(!recent.missed);
    }

    #[test]
    fn a_later_write_supersedes_and_keeps_its_own_place() {
        let mut log = ReplicatedLog::default();
        let set = |n| change("set", Retention::Latest("x".into()), n);
        log.push(1, set(1));
        log.push(2, change("hotswap", Retention::Keep, 2));
        log.push(3, set(3));
        assert_eq!(bodies(&log.since(0)), vec![2, 3]);
        assert!(!log.since(0).missed, "superseded is not missed");
        // A reader that read the first write gets only the newer one.
        assert_eq!(bodies(&log.since(1)), vec![2, 3]);
        assert_eq!(bodies(&log.since(2)), vec![3]);
    }

    /// The defect this replaces: readers counted positions in a list that a
    /// snapshot install emptied, so after the replay they skipped entries.
    #[test]
    fn cursors_survive_a_snapshot_install() {
        let mut log = ReplicatedLog::default();
        for i in 1..=5 {
            log.push(i, change("hotswap", Retention::Keep, i));
        }
        let cursor = 5;
        // The snapshot (taken on the leader at index 8) holds 1..=8; this
        // node then applies 9.
        log.reset();
        for i in 1..=8 {
            log.push(i, change("hotswap", Retention::Keep, i));
        }
        log.push(9, change("hotswap", Retention::Keep, 9));
        assert_eq!(bodies(&log.since(cursor)), vec![6, 7, 8, 9]);
    }

    #[test]
    fn a_conditional_change_names_the_newest_of_its_topic() {
        let mut log = ReplicatedLog::default();
        let after = |n: Option<u64>| Change {
            expect: Some(Expected {
                topic: "campaign".into(),
                body: n.map(|n| serde_json::json!(n)),
            }),
            ..change("campaign", Retention::Latest("c".into()), 0)
        };
        assert!(log.precondition(&after(None)).is_ok());
        assert!(log.precondition(&after(Some(1))).is_err());
        log.push(1, change("campaign", Retention::Latest("c/1".into()), 1));
        log.push(2, change("audit", Retention::Keep, 9));
        log.push(3, change("campaign", Retention::Latest("c/2".into()), 2));
        log.push(4, change("audit", Retention::Keep, 10));
        assert!(log.precondition(&after(Some(2))).is_ok());
        // An older one of the topic, or none, no longer is the newest.
        assert!(log.precondition(&after(Some(1))).is_err());
        assert!(log.precondition(&after(None)).is_err());
        // An unconditional change always applies.
        assert!(
            log.precondition(&change("campaign", Retention::Keep, 5))
                .is_ok()
        );
    }

    #[test]
    fn local_indices_follow_the_entries() {
        let mut log = ReplicatedLog::default();
        let a = log.next_local();
        log.push(a, change("set", Retention::Keep, 1));
        let b = log.next_local();
        assert!(b > a);
    }
}
