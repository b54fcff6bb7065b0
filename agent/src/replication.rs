//! The agent's replicated state, typed: every change that goes to every
//! node (through the consensus log in a cluster, straight to the core on
//! one node), each kind with the rule that bounds how long the core and the
//! consensus snapshots keep it ([`Retention`]). Older history lives in the
//! store (the audit journal, each node's log file), not in the log.
//!
//! Readers ([`Reader`]) hold a cursor, the index of the last change they
//! read, so none skips or repeats a change, even across a snapshot install.

use halyard_backend::core::HaCore;
use halyard_backend::replicated::{Change, Expected, RelayedAlarm, Retention};
use serde::{Deserialize, Serialize};

use crate::upgrade::campaign::{CAMPAIGN_OPS_KEPT, Campaign, CampaignOp, NodeRelease};

/// Audit records the log keeps (the model shows as many).
pub const AUDIT_KEPT: usize = 1000;
/// Cluster-log batches of each node the log keeps.
pub const LOG_BATCHES_KEPT: usize = 64;

/// One replicated change. The topic names are the wire format: `hotswap`
/// and `relayed-alarm` are written by the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "topic", content = "body", rename_all = "kebab-case")]
pub enum Replicated {
    /// Attribute writes of one transaction, as text in the schema's types.
    Set(Vec<SetOp>),
    /// Configuration objects one transaction created or deleted (its
    /// attribute writes follow as a `Set`).
    Objects(Vec<ObjectOp>),
    /// A management operation of any node, for every node's audit trail.
    Audit(AuditEntry),
    /// A batch of a node's warnings and errors (the cluster log).
    Log(Batch),
    /// An upgrade campaign's state.
    Campaign(Campaign),
    /// An operator's request about a campaign.
    CampaignOp(CampaignOp),
    /// A node's release status.
    ReleaseStatus(NodeRelease),
    /// A unit inserted or removed (the hot-swap manager's note).
    Hotswap(serde_json::Value),
    /// An alarm of a non-peer node, relayed by its proxy.
    RelayedAlarm(RelayedAlarm),
    /// A node's SNMP engine ID (hex), for localizing users' keys.
    SnmpEngine(SnmpEngine),
}

/// A node's SNMP engine, as it publishes it once its SNMP face is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpEngine {
    pub node: String,
    /// The engine ID in hex.
    pub engine_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOp {
    pub object: String,
    pub attribute: String,
    pub value: String,
}

/// A configuration object created (its class and attributes, as text in
/// the schema's types) or deleted (with everything under it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectOp {
    Create {
        class: String,
        object: String,
        values: Vec<(String, String)>,
    },
    Delete {
        object: String,
    },
}

impl ObjectOp {
    pub fn object(&self) -> &str {
        match self {
            ObjectOp::Create { object, .. } | ObjectOp::Delete { object } => object,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time: i64,
    pub principal: String,
    /// `Protocol` value.
    pub protocol: u32,
    pub operation: String,
    pub result: String,
}

impl Replicated {
    /// How long the log keeps this change: state that is overwritten until
    /// the next write of the same thing, history within a bound.
    pub fn retention(&self) -> Retention {
        let recent = |class: String, keep: usize| Retention::Recent { class, keep };
        match self {
            Self::Set(ops) => {
                let mut targets: Vec<String> = ops
                    .iter()
                    .map(|o| format!("{}#{}", o.object, o.attribute))
                    .collect();
                targets.sort();
                Retention::Latest(format!("set/{}", targets.join(",")))
            }
            // The latest create or delete of the same objects is their state.
            Self::Objects(ops) => {
                let mut targets: Vec<&str> = ops.iter().map(ObjectOp::object).collect();
                targets.sort();
                Retention::Latest(format!("objects/{}", targets.join(",")))
            }
            Self::Audit(_) => recent("audit".into(), AUDIT_KEPT),
            Self::Log(b) => recent(format!("log/{}", b.node), LOG_BATCHES_KEPT),
            Self::Campaign(c) => Retention::Latest(format!("campaign/{}", c.id)),
            Self::CampaignOp(_) => recent("campaign-op".into(), CAMPAIGN_OPS_KEPT),
            Self::ReleaseStatus(s) => Retention::Latest(format!("release-status/{}", s.node)),
            // Written by the core, which states its own rule.
            Self::Hotswap(_) => Retention::Keep,
            Self::SnmpEngine(e) => Retention::Latest(format!("snmp-engine/{}", e.node)),
            Self::RelayedAlarm(a) => Retention::Latest(format!(
                "{}/{}/{}",
                halyard_backend::core::RELAYED_ALARM,
                a.resource,
                a.cause
            )),
        }
    }

    /// The change as the core carries it.
    pub fn change(&self) -> Result<Change, serde_json::Error> {
        let v = serde_json::to_value(self)?;
        Ok(Change {
            topic: v["topic"].as_str().unwrap_or_default().to_string(),
            retention: self.retention(),
            body: v["body"].clone(),
            expect: None,
        })
    }

    /// Decodes a change the core kept.
    pub fn decode(topic: &str, body: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({"topic": topic, "body": body}))
    }

    /// Sends it to every node; returns once committed (applied here on one
    /// node).
    pub async fn replicate(&self, core: &HaCore) -> Result<(), ReplicateError> {
        core.replicate(self.change()?).await?;
        Ok(())
    }

    /// Sends it to every node only if the newest change of its topic is
    /// still `previous` (its body as the log keeps it; None: there is
    /// none). Otherwise every node refuses it, and so does this call: the
    /// writer read a replica that was behind, or waited while others wrote.
    pub async fn replicate_after(
        &self,
        core: &HaCore,
        previous: Option<serde_json::Value>,
    ) -> Result<(), ReplicateError> {
        let mut change = self.change()?;
        change.expect = Some(Expected {
            topic: change.topic.clone(),
            body: previous,
        });
        core.replicate(change).await?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error("cannot encode the change: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Core(#[from] halyard_backend::core::CoreError),
}

/// A reader of the replicated changes: each call returns the changes
/// applied since the previous one, in order, decoded.
#[derive(Debug, Default)]
pub struct Reader {
    cursor: u64,
    /// Who reads (for the log).
    name: &'static str,
}

impl Reader {
    pub fn new(name: &'static str) -> Self {
        Self { cursor: 0, name }
    }

    /// The changes applied since the last call. A change that does not
    /// decode (written by a newer release) is logged and skipped; a reader
    /// that lagged beyond a history bound is told in the log.
    pub async fn next(
        &mut self,
        core: &HaCore,
    ) -> Result<Vec<Replicated>, halyard_backend::core::CoreError> {
        Ok(self
            .next_with_bodies(core)
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// As [`Reader::next`], each change with its body as the log keeps it:
    /// what a conditional write ([`Replicated::replicate_after`]) names.
    pub async fn next_with_bodies(
        &mut self,
        core: &HaCore,
    ) -> Result<Vec<(Replicated, serde_json::Value)>, halyard_backend::core::CoreError> {
        let since = core.replicated_since(self.cursor).await?;
        // A reader that starts (cursor 0, at every start of the agent)
        // reads what the retention keeps, as designed; one that lagged
        // behind the retention has missed changes it was reading.
        if since.missed && self.cursor > 0 {
            tracing::warn!(
                reader = self.name,
                after = self.cursor,
                "replicated history was dropped before it was read (bounded retention); the store keeps it"
            );
        } else if since.missed {
            tracing::debug!(
                reader = self.name,
                "starting from the replicated changes the retention keeps"
            );
        }
        let mut out = Vec::with_capacity(since.entries.len());
        for e in since.entries {
            self.cursor = e.index;
            match Replicated::decode(&e.topic, &e.body) {
                Ok(r) => out.push((r, e.body)),
                Err(error) => tracing::warn!(
                    reader = self.name,
                    topic = %e.topic,
                    index = e.index,
                    %error,
                    "replicated change not understood; skipped"
                ),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_written_topics_decode() {
        let hotswap = Replicated::decode(
            halyard_backend::core::HOTSWAP_TOPIC,
            &serde_json::json!({"remove": []}),
        )
        .unwrap();
        assert!(matches!(hotswap, Replicated::Hotswap(_)));
        let alarm = RelayedAlarm {
            resource: "ne=1/node=legacy".into(),
            cause: 3,
            severity: None,
            text: None,
        };
        let relayed = Replicated::decode(
            halyard_backend::core::RELAYED_ALARM,
            &serde_json::to_value(&alarm).unwrap(),
        )
        .unwrap();
        assert_eq!(relayed, Replicated::RelayedAlarm(alarm));
    }

    #[test]
    fn a_change_round_trips_with_its_rule() {
        let set = Replicated::Set(vec![SetOp {
            object: "ne=1/shelf=1/fan=1".into(),
            attribute: "Label".into(),
            value: "x".into(),
        }]);
        let c = set.change().unwrap();
        assert_eq!(c.topic, "set");
        assert!(matches!(c.retention, Retention::Latest(_)));
        assert_eq!(Replicated::decode(&c.topic, &c.body).unwrap(), set);
        let audit = Replicated::Audit(AuditEntry {
            time: 1,
            principal: "admin".into(),
            protocol: 1,
            operation: "set".into(),
            result: "ok".into(),
        });
        assert_eq!(
            audit.retention(),
            Retention::Recent {
                class: "audit".into(),
                keep: AUDIT_KEPT
            }
        );
    }
}

/// The cluster log's payload (`crate::clusterlog`): one record, and a
/// node's batch of them.
/// One record as it travels through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rec {
    /// Milliseconds since the epoch.
    pub t: i64,
    pub level: String,
    pub source: String,
    pub message: String,
    /// Part of a black box: the failure's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub node: String,
    pub boot: u64,
    pub seq: u64,
    pub records: Vec<Rec>,
}
