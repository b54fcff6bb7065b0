//! The access model enforced where every face's writes and operations
//! arrive: a transaction or an operation the rules do not allow is refused
//! before anything is done, audited with the user, the face and the rule,
//! and counted in the element's `AccessDenials` (see
//! `halyard_cluster_model::access` for the rules' meaning).

use std::sync::atomic::Ordering;

use halyard_cluster_model::access::{self, Op, Subject};
use halyard_cluster_model::model::NetworkElementPatch;
use halyard_cluster_model::port::{
    Change, InformationModel, ManagedObject, ModelError, Principal, Transaction, TxError,
};
use halyard_cluster_model::{ObjectName, SCHEMA, Value};

use super::AgentModel;

impl AgentModel {
    /// Refuses the first change of `tx` the access model does not allow,
    /// and an access rule that would not parse.
    pub(super) async fn check_access(&self, tx: &Transaction) -> Result<(), TxError> {
        self.check_rules_written(tx).await?;
        if tx.principal.is_trusted() {
            return Ok(());
        }
        let policy = access::load(self)
            .await
            .map_err(|error| TxError { index: 0, error })?;
        let class_of = |name: &ObjectName| self.store.class_of(name);
        if let Some((index, d, error)) =
            access::first_refusal(&policy, &tx.principal, &tx.changes, class_of)
        {
            self.count_denial(&tx.principal, &d.by, &error, false).await;
            return Err(TxError { index, error });
        }
        Ok(())
    }

    /// Refuses an operation the access model does not allow.
    pub(crate) async fn check_invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        principal: &Principal,
    ) -> Result<(), ModelError> {
        if principal.is_trusted() {
            return Ok(());
        }
        let obj = self.store.get(target).await?;
        let policy = access::load(self).await?;
        let subject = Subject::operation(obj.class, operation);
        let d = policy.decide(&principal.user, principal.role, &subject, Op::Exec);
        if d.permit {
            return Ok(());
        }
        let error = access::refusal(principal, &subject, Op::Exec, &d);
        self.count_denial(principal, &d.by, &error, true).await;
        Err(error)
    }

    /// Logs and counts a refusal, and audits it when the caller does not
    /// (a refused transaction is audited by `transact` with what it was).
    async fn count_denial(
        &self,
        principal: &Principal,
        rule: &str,
        error: &ModelError,
        audit: bool,
    ) {
        let n = self.access_denials.fetch_add(1, Ordering::Relaxed) + 1;
        access::Denials::global().record(
            access::face_name(principal.protocol),
            &principal.user,
            rule,
        );
        tracing::warn!(
            user = %principal.user,
            protocol = principal.protocol.yang_name(),
            %error,
            "refused by the access rules"
        );
        if let Err(e) = self.store.update(
            &self.root,
            NetworkElementPatch::new().access_denials(n).values(),
        ) {
            tracing::error!(error = %e, "cannot count the refusal");
        }
        if audit {
            self.audit(principal, "access", &format!("refused: {error}"))
                .await;
        }
    }

    /// An access rule created or changed must parse (one of rpc,
    /// notification and path; known operations).
    async fn check_rules_written(&self, tx: &Transaction) -> Result<(), TxError> {
        for (index, c) in tx.changes.iter().enumerate() {
            let fail = |reason: String| TxError {
                index,
                error: ModelError::Inconsistent { reason },
            };
            match c {
                Change::Create {
                    class,
                    object,
                    values,
                } if SCHEMA.class(class).is_some_and(|m| m.name == "AccessRule") => {
                    let meta = SCHEMA.class(class).expect("checked");
                    let mut o = ManagedObject {
                        class: meta,
                        index: 0,
                        name: object.clone(),
                        parent_index: 0,
                        values: meta.attributes.iter().map(|_| Value::Absent).collect(),
                    };
                    for (a, v) in values {
                        if let Some((i, _)) = meta.attribute(a) {
                            o.values[i] = v.clone();
                        }
                    }
                    access::rule_of(&o).map_err(fail)?;
                }
                Change::Set {
                    object,
                    attribute,
                    value,
                } => {
                    let Ok(mut o) = self.store.get(object).await else {
                        continue;
                    };
                    if o.class.name != "AccessRule" {
                        continue;
                    }
                    // Later writes of the same transaction count too.
                    for later in &tx.changes[index..] {
                        if let Change::Set {
                            object: lo,
                            attribute: la,
                            value: lv,
                        } = later
                            && lo == object
                            && let Some((i, _)) = o.class.attribute(la)
                        {
                            o.values[i] = lv.clone();
                        }
                    }
                    if let Some((i, _)) = o.class.attribute(attribute) {
                        o.values[i] = value.clone();
                    }
                    access::rule_of(&o).map_err(fail)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
