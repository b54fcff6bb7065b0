//! Operations a manager of the agent serves itself (the hot-swap
//! controllers' Insert and Remove, and so on). A manager registers with
//! the model when it starts (`AgentModel::serve`); COpCo hands such an
//! operation over after resolving it. So the model, and COpCo, know no
//! manager: the managers know them.

use async_trait::async_trait;
use halyard_cluster_model::meta::ClassMeta;
use halyard_cluster_model::port::{JobHandle, ModelError, Principal};
use halyard_cluster_model::{ObjectName, Value};

#[async_trait]
pub trait Operations: Send + Sync + std::fmt::Debug + 'static {
    /// Whether this manager serves `operation` on objects of `class`.
    fn serves(&self, class: &ClassMeta, operation: &str) -> bool;

    /// Carries the operation out (the manager audits it).
    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: &[(String, Value)],
        principal: &Principal,
    ) -> Result<JobHandle, ModelError>;
}
