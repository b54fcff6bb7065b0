//! The alarm inventory of this node's release: every probable cause of the
//! schema, one ietf-alarms alarm type each. It is fixed per release, so it
//! changes when a node starts another release (an upgrade or a fall-back).
//! The node keeps the inventory it last served in its data directory and,
//! when the one it starts with differs, announces `AlarmInventoryChanged`
//! (ietf-alarms alarm-inventory-changed, and the MIB's trap).

use std::collections::BTreeSet;
use std::path::Path;

use halyard_cluster_model::ObjectName;
use halyard_cluster_model::model::{AlarmInventoryChangedPatch, ProbableCause};
use halyard_cluster_model::value::SchemaEnum;

use crate::model::AgentModel;

/// The file, in the data directory: one alarm type (the probable cause's
/// YANG name) per line.
const FILE: &str = "alarm-inventory";

/// This release's alarm types.
pub fn current() -> BTreeSet<String> {
    ProbableCause::ALL
        .iter()
        .filter_map(|c| ProbableCause::META.by_value(c.value()))
        .map(|v| v.yang_name.to_string())
        .collect()
}

/// How many types `now` gained and lost against `before`.
pub fn difference(before: &BTreeSet<String>, now: &BTreeSet<String>) -> (u32, u32) {
    (
        now.difference(before).count() as u32,
        before.difference(now).count() as u32,
    )
}

/// Compares the inventory with the one the node served before, announces
/// a change, and remembers this one. A first start has nothing to compare.
pub async fn check(data_dir: &Path, model: &AgentModel, root: &str, node: &str) {
    let Ok(root) = ObjectName::parse(root) else {
        return;
    };
    let path = data_dir.join(FILE);
    let now = current();
    let before: Option<BTreeSet<String>> = tokio::fs::read_to_string(&path)
        .await
        .ok()
        .map(|t| t.lines().map(str::to_string).collect());
    if before.as_ref() == Some(&now) {
        return;
    }
    if let Some(before) = &before {
        let (added, removed) = difference(before, &now);
        tracing::info!(
            added,
            removed,
            "the alarm inventory changed with the release"
        );
        model.publish(
            "AlarmInventoryChanged",
            &root,
            AlarmInventoryChangedPatch::new()
                .node(node)
                .added(added)
                .removed(removed)
                .values()
                .to_vec(),
        );
    }
    let text: String = now.iter().map(|t| format!("{t}\n")).collect();
    // Written aside and renamed: a crash leaves the old list or the new.
    let tmp = path.with_extension("new");
    let written = async {
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, &path).await
    };
    if let Err(e) = written.await {
        tracing::warn!(error = %e, path = %path.display(), "cannot remember the alarm inventory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_is_every_probable_cause() {
        let now = current();
        assert_eq!(now.len(), ProbableCause::ALL.len());
        let mut before = now.clone();
        let gone = before.pop_first().unwrap();
        before.insert("old-type".into());
        assert_eq!(difference(&before, &now), (1, 1));
        assert!(now.contains(&gone));
        assert_eq!(difference(&now, &now), (0, 0));
    }
}
