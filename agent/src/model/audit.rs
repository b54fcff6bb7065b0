//! The audit trail: audit records of management writes, in the journal, in
//! the cluster log and as managed objects.

use std::sync::atomic::Ordering;

use halyard_cluster_model::model::{AuditRecordPatch, Protocol};
use halyard_cluster_model::port::Principal;
use halyard_cluster_model::{ObjectName, SchemaEnum, Timestamp};
use serde_json::json;

use crate::replication::{AUDIT_KEPT, AuditEntry, Replicated};

use super::AgentModel;

impl AgentModel {
    /// Records a management write in the audit trail.
    pub(crate) async fn audit(&self, who: &Principal, operation: &str, result: &str) {
        let now = Timestamp::now();
        if let Err(e) = self
            .repo
            .journal("audit", &who.user, &json!({"time": now.0, "principal": who.user, "protocol": who.protocol.yang_name(), "operation": operation, "result": result}))
            .await
        {
            tracing::error!(error = %e, %operation, "audit record not stored");
        }
        // In a cluster the record goes through the log, so every node's
        // audit trail shows every node's operations (the journal keeps the
        // handling node's own).
        if self.cluster.get().is_some() {
            let core = self.core.clone();
            let entry = Replicated::Audit(AuditEntry {
                time: now.0,
                principal: who.user.clone(),
                protocol: who.protocol.value(),
                operation: operation.to_string(),
                result: result.to_string(),
            });
            // Not on the request's path: a cut-off node still answers.
            self.tasks.spawn("audit record to the log", async move {
                if let Err(e) = entry.replicate(&core).await {
                    tracing::warn!(error = %e, "audit record not replicated");
                }
            });
            return;
        }
        let n = self.next_audit.fetch_add(1, Ordering::Relaxed);
        self.add_audit_record(n, now, &who.user, who.protocol.value(), operation, result)
            .await;
    }

    /// One record of the audit trail as a managed object (the last
    /// `AUDIT_KEPT` are kept).
    pub(super) async fn add_audit_record(
        &self,
        n: u32,
        now: Timestamp,
        user: &str,
        protocol: u32,
        operation: &str,
        result: &str,
    ) {
        let object = format!("{}/audit={n}", self.root);
        // A protocol this build does not know (a replicated record) the
        // store would refuse: no record, as before.
        let Some(protocol) = Protocol::from_value(protocol) else {
            return;
        };
        let values = AuditRecordPatch::new()
            .time(now)
            .principal(user)
            .protocol(protocol)
            .operation(operation)
            .result(result);
        if self
            .create_dynamic("AuditRecord", &object, values.values())
            .await
            .is_ok()
            && let Ok(o) = ObjectName::parse(&object)
        {
            let mut q = self.audits.lock().await;
            q.push_back(o);
            while q.len() > AUDIT_KEPT {
                if let Some(old) = q.pop_front() {
                    self.forget(&old).await;
                }
            }
        }
    }
}
