//! The per-request snapshot of every object, for containment and the ENTITY-MIB tables.

use std::collections::HashMap;
use std::sync::Arc;

use halyard_cluster_model::meta::ClassMeta;
use halyard_cluster_model::physical;
use halyard_cluster_model::port::{ManagedObject, ModelError};

use super::{Ctx, Mib};

const SNAPSHOT_PAGE: usize = 512;

#[derive(Debug)]
pub(super) struct Snapshot {
    pub(super) objects: Vec<ManagedObject>,
    pub(super) by_index: HashMap<u32, usize>,
    /// (parent index, child index) in order.
    pub(super) children: Vec<(u32, u32, usize)>,
    /// Positions of physical entities, by index.
    pub(super) physical: Vec<usize>,
    /// EntityAlarmStatus bits of each alarmed resource (by name).
    pub(super) alarms: HashMap<String, u8>,
    /// The physical entities' sensors: (entity index, object position,
    /// attribute position), by entity index (all above the objects').
    pub(super) sensors: Vec<(u32, usize, usize)>,
    /// Positions of the interfaces (ports), by index.
    pub(super) interfaces: Vec<usize>,
    /// (container, contained) physical entity pairs, in order.
    pub(super) contains: Vec<(u32, u32)>,
    /// When the agent started: entStateLastChanged of an entity whose
    /// states have not changed since (RFC 4268).
    pub(super) started: halyard_cluster_model::Timestamp,
}

impl Snapshot {
    /// The sensor at `k` of [`Snapshot::sensors`].
    pub(super) fn sensor(&self, k: usize) -> Option<physical::Sensor<'_>> {
        let (_, i, position) = self.sensors.get(k)?;
        physical::sensors(&self.objects[*i])
            .into_iter()
            .find(|s| s.position == *position)
    }

    /// The position in [`Snapshot::sensors`] of the sensor with an index.
    pub(super) fn sensor_at(&self, index: u32) -> Option<usize> {
        self.sensors.binary_search_by_key(&index, |s| s.0).ok()
    }

    /// What identifies the physical entity table's shape: each entity's
    /// index, class and container (entLastChangeTime follows it).
    pub(super) fn physical_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for i in &self.physical {
            let o = &self.objects[*i];
            (o.index, o.class.name, physical_parent(self, o)).hash(&mut h);
        }
        h.finish()
    }
}

impl Mib {
    pub(super) async fn snapshot(&self, ctx: &mut Ctx) -> Result<Arc<Snapshot>, ModelError> {
        if let Some(s) = &ctx.snapshot {
            return Ok(s.clone());
        }
        // Paged, so that no implementation is asked for an unbounded batch.
        let mut objects: Vec<ManagedObject> = Vec::new();
        loop {
            let after = objects.last().map_or(0, |o| o.index);
            let page = self.model.walk(None, after, SNAPSHOT_PAGE).await?;
            let full = page.len() == SNAPSHOT_PAGE;
            objects.extend(page);
            if !full || objects.last().is_none_or(|o| o.index == u32::MAX) {
                break;
            }
        }
        if let Some(r) = ctx.reader.as_mut() {
            r.objects(&mut objects);
        }
        let by_index: HashMap<u32, usize> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.index, i))
            .collect();
        let mut children: Vec<(u32, u32, usize)> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.parent_index != 0)
            .map(|(i, o)| (o.parent_index, o.index, i))
            .collect();
        children.sort();
        let mut physical: Vec<usize> = (0..objects.len())
            .filter(|i| physical_class(objects[*i].class).is_some())
            .collect();
        physical.sort_by_key(|i| objects[*i].index);
        let alarms = physical::alarm_bits(&objects);
        let mut sensors: Vec<(u32, usize, usize)> = physical
            .iter()
            .flat_map(|i| {
                physical::sensors(&objects[*i])
                    .into_iter()
                    .filter_map(move |s| Some((s.index()?, *i, s.position)))
            })
            .collect();
        sensors.sort();
        let interfaces: Vec<usize> = physical
            .iter()
            .copied()
            .filter(|i| physical::is_interface(&objects[*i]))
            .collect();
        let mut snap = Snapshot {
            objects,
            by_index,
            children,
            physical,
            alarms,
            sensors,
            interfaces,
            contains: Vec::new(),
            started: self.engine.started_at,
        };
        let mut contains: Vec<(u32, u32)> = snap
            .physical
            .iter()
            .map(|i| &snap.objects[*i])
            .filter_map(|o| Some((physical_parent(&snap, o)?, o.index)))
            .chain(
                snap.sensors
                    .iter()
                    .map(|(s, i, _)| (snap.objects[*i].index, *s)),
            )
            .collect();
        contains.sort();
        snap.contains = contains;
        let s = Arc::new(snap);
        ctx.snapshot = Some(s.clone());
        Ok(s)
    }
}

/// entPhysicalClass of a class's objects: the schema's `Entity` qualifier
/// (`None`: not a physical entity).
pub(super) fn physical_class(class: &ClassMeta) -> Option<i64> {
    class.entity().map(|k| i64::from(k.value()))
}

/// The nearest physical ancestor of an object.
pub(super) fn physical_parent(snap: &Snapshot, o: &ManagedObject) -> Option<u32> {
    physical::parent(o, |i| Some(&snap.objects[*snap.by_index.get(&i)?])).map(|p| p.index)
}
