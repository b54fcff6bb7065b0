//! Availability incidents shown as managed objects.

use halyard_cluster_model::model::AvailabilityIncidentPatch;
use halyard_cluster_model::port::{InformationModel, Query};
use halyard_cluster_model::{ObjectName, Timestamp, Value};

use super::AgentModel;

/// Availability incidents shown as managed objects (the newest; the
/// repository keeps them all).
const INCIDENTS_SHOWN: usize = 200;

impl AgentModel {
    /// Shows the availability incidents the ASR recorded (in a cluster,
    /// every node records each one as it applies the failure) as
    /// AvailabilityIncident objects, so every face of every node lists them.
    pub(crate) async fn sync_incidents(&self) {
        let Ok(all) = self.core.asr.incidents().await else {
            return;
        };
        let start = all.len().saturating_sub(INCIDENTS_SHOWN);
        let shown: std::collections::BTreeSet<i64> = all[start..].iter().map(|i| i.id).collect();
        for i in &all[start..] {
            let name = format!("{}/incident={}", self.root, i.id);
            let recovery = i
                .recovery
                .parse::<halyard_cluster_model::model::RecoveryAction>()
                .unwrap_or_default();
            let mut values = AvailabilityIncidentPatch::new()
                .component(i.component.as_str())
                .service_instance(i.si.as_str())
                .started_at(Timestamp(i.started))
                .service_lost(i.service_lost)
                .recovery(recovery)
                .recovery_completed(i.completed)
                .duration(
                    i.ended
                        .map_or(0, |e| (e - i.started).clamp(0, i64::from(u32::MAX)) as u32),
                )
                .values()
                .to_vec();
            // Unset while the outage lasts (the patch's setter takes a Timestamp).
            values.push((
                "EndedAt",
                i.ended.map_or(Value::Absent, |e| Value::Time(Timestamp(e))),
            ));
            let Ok(n) = ObjectName::parse(&name) else {
                continue;
            };
            if self.store.update(&n, &values).is_err() {
                let _ = self
                    .create_dynamic("AvailabilityIncident", &name, &values)
                    .await;
            }
        }
        // Older ones leave the tree (not the repository).
        if let Ok(objs) = self
            .store
            .query(&Query {
                classes: vec!["AvailabilityIncident".into()],
                ..Query::default()
            })
            .await
        {
            for o in objs {
                let id = o
                    .name
                    .as_str()
                    .rsplit_once("incident=")
                    .and_then(|(_, id)| id.parse::<i64>().ok());
                if id.is_some_and(|id| !shown.contains(&id)) {
                    self.forget(&o.name).await;
                }
            }
        }
    }
}
