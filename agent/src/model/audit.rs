//! The audit trail: audit records of management writes, in the journal, in
//! the cluster log and as managed objects.

use std::sync::atomic::Ordering;

use halyard_cluster_model::port::Principal;
use halyard_cluster_model::{ObjectName, SchemaEnum, Timestamp, Value};
use serde_json::json;

use crate::replication::{AUDIT_KEPT, AuditEntry, Replicated};

use super::{AgentModel, truncate};

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
        let values = [
            ("Time", Value::Time(now)),
            ("Principal", Value::Str(truncate(user, 64))),
            ("Protocol", Value::Enum(protocol)),
            ("Operation", Value::Str(truncate(operation, 255))),
            ("Result", Value::Str(truncate(result, 255))),
        ];
        if self
            .create_dynamic("AuditRecord", &object, &values)
            .await
            .is_ok()
            && let Ok(o) = ObjectName::parse(&object)
        {
            let mut q = self.audits.lock().await;
            q.push_back(o);
            while q.len() > AUDIT_KEPT {
                if let Some(old) = q.pop_front() {
                    self.store.remove(&old);
                }
            }
        }
    }
}
