//! The model's part of `/metrics`, kept between scrapes.
//!
//! Each object's series are rendered when the object changes, not at
//! every scrape: a scrape asks the model which objects changed since the
//! revision it last saw ([`InformationModel::changed`]), renders those,
//! drops the ones that went away, and copies the kept text out. At 10,000
//! components (about 50,000 objects, 25 MB of exposition) reading and
//! encoding the whole model took 80 ms a scrape; most objects do not
//! change between two scrapes. A model that keeps no revisions is read
//! whole each time, as before.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use halyard_cluster_model::Value;
use halyard_cluster_model::alarm;
use halyard_cluster_model::meta::{AttrType, ClassMeta, MetricKind};
use halyard_cluster_model::port::{InformationModel, ManagedObject, ModelError};

use crate::metrics::{Exposition, base_unit};

/// One family: its header, and each object's series in index order.
#[derive(Debug)]
struct Family {
    /// The exposition name (base units; without `_total`).
    name: String,
    help: &'static str,
    kind: MetricKind,
    factor: f64,
    /// Object index -> where its lines are in `body`.
    series: BTreeMap<u32, Entry>,
    /// Every series, in index order, as one piece: what a scrape sends
    /// (shared, not copied). Kept once: an object's lines are read back
    /// from it when the body is built again.
    body: Bytes,
    /// Lines written since the body was built, by object index.
    pending: HashMap<u32, Box<str>>,
    /// The body no longer matches `series`.
    dirty: bool,
}

/// One object's lines of a family.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// A digest of the values they show.
    digest: u64,
    /// Their place in the family's body (when not pending).
    at: usize,
    len: usize,
}

/// The rendered series of every object, current with a model revision.
#[derive(Debug, Default)]
pub struct ModelExposition {
    /// The model revision every kept series is current with; `None`
    /// until the first complete read (or for a model without revisions).
    revision: Option<u64>,
    /// By the schema's static family name.
    families: HashMap<&'static str, Family>,
    /// Schema names, in exposition-name order.
    order: Vec<&'static str>,
    /// Every object kept, by index: its class names its families; a
    /// digest of its name, which its labels show.
    objects: BTreeMap<u32, (&'static ClassMeta, u64)>,
    /// Alarm objects, for the severity summary.
    alarms: BTreeMap<u32, ManagedObject>,
    /// Per class (by address): its families, each with the positions of
    /// its attributes in that family, in attribute order.
    plans: HashMap<usize, Plan>,
}

/// A class's families: (schema family name, attribute positions).
type Plan = std::sync::Arc<[(&'static str, Vec<usize>)]>;

/// The model's part of an exposition, as of `at`.
#[derive(Debug)]
pub struct Sealed {
    /// The families, in the classic text format.
    pub text: Vec<Bytes>,
    /// The families, in OpenMetrics.
    pub open: Vec<Bytes>,
    /// The alarm objects, for the severity summary.
    pub alarms: Vec<ManagedObject>,
    /// Objects exposed.
    pub objects: usize,
    pub at: Instant,
}

impl Sealed {
    pub fn pieces(&self, format: Exposition) -> &[Bytes] {
        match format {
            Exposition::Text => &self.text,
            Exposition::OpenMetrics => &self.open,
        }
    }
}

/// Objects rendered between two yields to the runtime (about a
/// millisecond's work).
const RENDER_STEP: usize = 256;

/// What one refresh did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refresh {
    /// Objects read and rendered again.
    pub rendered: usize,
    /// Objects kept in all.
    pub objects: usize,
    /// Time spent waiting for the model's pages.
    pub reading: Duration,
    /// Time spent rendering what changed.
    pub rendering: Duration,
}

impl ModelExposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache of exactly these objects (the bench, tests, and a model
    /// that keeps no revisions).
    pub fn of(objects: &[ManagedObject]) -> Self {
        let mut me = Self::new();
        for o in objects {
            me.put(o);
        }
        me.seal();
        me
    }

    /// Objects kept.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Brings the cache up to date with the model, reading it in pages of
    /// `page` objects with `deadline` for the whole read. On an error the
    /// cache stays usable: what was read is kept, and the next refresh
    /// reads again everything changed since the last complete one.
    pub async fn refresh(
        &mut self,
        model: &dyn InformationModel,
        page: usize,
        deadline: Duration,
    ) -> Result<Refresh, ModelError> {
        let start = Instant::now();
        let page = page.max(1);
        let since = self.revision.unwrap_or(0);
        let mut after = 0u32;
        let mut revision = None;
        let mut done = Refresh::default();
        loop {
            let left = deadline
                .checked_sub(start.elapsed())
                .ok_or(ModelError::Timeout)?;
            let asked = Instant::now();
            let got = tokio::time::timeout(left, model.changed(since, after, page))
                .await
                .map_err(|_| ModelError::Timeout)??;
            done.reading += asked.elapsed();
            let Some(p) = got else {
                // No revisions: read everything.
                let objects = crate::metrics::snapshot(model, page, left).await?;
                *self = Self::of(&objects);
                return Ok(Refresh {
                    rendered: objects.len(),
                    objects: self.len(),
                    reading: start.elapsed(),
                    ..done
                });
            };
            // Changes after the first page was read are seen next time:
            // an object changed meanwhile in a page already read has a
            // later revision than this one.
            let revision = *revision.get_or_insert(p.revision);
            let last = p.present.last().copied();
            let complete = p.present.len() < page;
            // What the model no longer has in the range this page covers.
            let upto = if complete {
                u32::MAX
            } else {
                last.unwrap_or(u32::MAX)
            };
            let gone: Vec<u32> = self
                .objects
                .range(after.saturating_add(1)..=upto)
                .map(|(i, _)| *i)
                .filter(|i| p.present.binary_search(i).is_err())
                .collect();
            for i in gone {
                self.remove(i);
            }
            done.rendered += p.changed.len();
            for some in p.changed.chunks(RENDER_STEP) {
                let rendering = Instant::now();
                for o in some {
                    self.put(o);
                }
                done.rendering += rendering.elapsed();
                // A scrape's transfer (25 MB at 10,000 components) shares
                // the runtime's workers with this.
                tokio::task::yield_now().await;
            }
            match last {
                Some(l) if !complete => after = l,
                _ => {
                    self.revision = Some(revision);
                    done.objects = self.len();
                    let sealing = Instant::now();
                    self.seal();
                    done.rendering += sealing.elapsed();
                    return Ok(done);
                }
            }
            // Let the model's writers in between pages.
            tokio::task::yield_now().await;
        }
    }

    /// Renders one object's series again (it is new or changed).
    fn put(&mut self, o: &ManagedObject) {
        let named = digest(|h| o.name.as_str().hash(h));
        if let Some((class, name)) = self.objects.get(&o.index)
            && (!std::ptr::eq(*class, o.class) || *name != named)
        {
            self.remove(o.index);
        }
        self.objects.insert(o.index, (o.class, named));
        if alarm::is_alarm(o) {
            self.alarms.insert(o.index, o.clone());
        } else {
            self.alarms.remove(&o.index);
        }
        let mut labels = String::with_capacity(64);
        labels.push_str("{name=\"");
        escape_label(&mut labels, o.name.as_str());
        labels.push_str("\",class=\"");
        escape_label(&mut labels, o.class.name);
        labels.push('"');
        let plan = self.plan(o.class);
        for (key, attrs) in plan.iter() {
            let first = &o.class.attributes[attrs[0]];
            let kind = first.metric.as_ref().map_or(MetricKind::Gauge, |m| m.kind);
            let fam = self.family(key, first.description, kind);
            // Most changes leave most families as they were (a fan's
            // speed moves, its states stay): only those that moved are
            // written again.
            let shown = digest(|h| {
                for &ai in attrs {
                    hash_value(h, &o.values[ai]);
                }
            });
            if fam.series.get(&o.index).is_some_and(|e| e.digest == shown) {
                continue;
            }
            let mut text = String::new();
            for &ai in attrs {
                series(
                    &mut text,
                    fam,
                    &labels,
                    &o.class.attributes[ai].ty,
                    &o.values[ai],
                );
            }
            fam.dirty = true;
            if text.is_empty() {
                fam.series.remove(&o.index);
                fam.pending.remove(&o.index);
            } else {
                fam.series.insert(
                    o.index,
                    Entry {
                        digest: shown,
                        at: 0,
                        len: 0,
                    },
                );
                fam.pending.insert(o.index, text.into_boxed_str());
            }
        }
    }

    fn plan(&mut self, class: &'static ClassMeta) -> Plan {
        self.plans
            .entry(class as *const ClassMeta as usize)
            .or_insert_with(|| {
                let mut plan: Vec<(&'static str, Vec<usize>)> = Vec::new();
                for (ai, a) in class.attributes.iter().enumerate() {
                    let Some(m) = &a.metric else { continue };
                    match plan.iter_mut().find(|(k, _)| *k == m.name) {
                        Some((_, attrs)) => attrs.push(ai),
                        None => plan.push((m.name, vec![ai])),
                    }
                }
                plan.into()
            })
            .clone()
    }

    /// Forgets an object that went away.
    fn remove(&mut self, index: u32) {
        let Some((class, _)) = self.objects.remove(&index) else {
            return;
        };
        self.alarms.remove(&index);
        for a in class.attributes {
            let Some(m) = &a.metric else { continue };
            if let Some(f) = self.families.get_mut(m.name)
                && f.series.remove(&index).is_some()
            {
                f.pending.remove(&index);
                f.dirty = true;
            }
        }
    }

    fn family(&mut self, key: &'static str, help: &'static str, kind: MetricKind) -> &mut Family {
        if !self.families.contains_key(key) {
            let (name, factor) = base_unit(key);
            self.families.insert(
                key,
                Family {
                    name,
                    help,
                    kind,
                    factor,
                    series: BTreeMap::new(),
                    body: Bytes::new(),
                    pending: HashMap::new(),
                    dirty: false,
                },
            );
            self.order.push(key);
            let fams = &self.families;
            self.order.sort_by(|a, b| fams[a].name.cmp(&fams[b].name));
        }
        self.families.get_mut(key).expect("just inserted")
    }

    /// Builds the body of every family changed since the last time.
    fn seal(&mut self) {
        for f in self.families.values_mut().filter(|f| f.dirty) {
            let Family {
                series,
                body,
                pending,
                ..
            } = f;
            let size = body.len() + pending.values().map(|t| t.len()).sum::<usize>();
            let mut out = Vec::with_capacity(size);
            for (i, e) in series.iter_mut() {
                let text = match pending.get(i) {
                    Some(t) => t.as_bytes(),
                    None => &body[e.at..e.at + e.len],
                };
                e.at = out.len();
                e.len = text.len();
                out.extend_from_slice(text);
            }
            *body = Bytes::from(out);
            pending.clear();
            pending.shrink_to(64);
            f.dirty = false;
        }
    }

    /// Every family with a series, in name order: each one's `# HELP` and
    /// `# TYPE` lines, then its series (shared with the cache, not copied).
    pub fn pieces(&self, format: Exposition) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.order.len() * 2);
        for key in &self.order {
            let f = &self.families[key];
            if f.series.is_empty() {
                continue;
            }
            let counter = f.kind == MetricKind::Counter;
            let help = f.help.trim_end_matches('.');
            // OpenMetrics names the family without `_total`; the text format with it.
            let suffix = if counter && format == Exposition::Text {
                "_total"
            } else {
                ""
            };
            out.push(Bytes::from(format!(
                "# HELP {name}{suffix} {help}\n# TYPE {name}{suffix} {kind}\n",
                name = f.name,
                help = help.replace('\\', "\\\\").replace('\n', "\\n"),
                kind = if counter { "counter" } else { "gauge" }
            )));
            out.push(f.body.clone());
        }
        out
    }

    /// The exposition as it stands, in both formats, to be served
    /// without the cache: scrapes read it while the cache is refreshed.
    pub fn sealed(&self) -> std::sync::Arc<Sealed> {
        std::sync::Arc::new(Sealed {
            text: self.pieces(Exposition::Text),
            open: self.pieces(Exposition::OpenMetrics),
            alarms: self.alarms.values().cloned().collect(),
            objects: self.len(),
            at: Instant::now(),
        })
    }
}

fn digest(feed: impl FnOnce(&mut std::hash::DefaultHasher)) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    feed(&mut h);
    h.finish()
}

fn hash_value(h: &mut std::hash::DefaultHasher, v: &Value) {
    match v {
        Value::Absent => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Str(s) => (2u8, s).hash(h),
        Value::U32(n) => (3u8, n).hash(h),
        Value::U64(n) => (4u8, n).hash(h),
        Value::I32(n) => (5u8, n).hash(h),
        Value::Real(x) => (6u8, x.to_bits()).hash(h),
        Value::Time(t) => (7u8, t).hash(h),
        Value::Enum(n) => (8u8, n).hash(h),
    }
}

/// Writes one attribute's series of one object into `out`.
fn series(out: &mut String, f: &Family, labels: &str, ty: &AttrType, v: &Value) {
    let sample = &f.name;
    let total = if f.kind == MetricKind::Counter {
        "_total"
    } else {
        ""
    };
    match (f.kind, ty) {
        (MetricKind::StateSet, AttrType::Enum(e)) => {
            let current = match v {
                Value::Enum(x) => Some(*x),
                _ => None,
            };
            for label in e.values {
                out.push_str(sample);
                out.push_str(total);
                out.push_str(labels);
                out.push_str(",state=\"");
                out.push_str(label.yang_name);
                out.push_str(if current == Some(label.value) {
                    "\"} 1\n"
                } else {
                    "\"} 0\n"
                });
            }
        }
        _ => {
            let mut ints = itoa::Buffer::new();
            let mut floats = ryu::Buffer::new();
            let value: &str = match (v, f.factor == 1.0) {
                // Integers stay integers (exact, and cheaper to format).
                (Value::U64(n), true) => ints.format(*n),
                (Value::U32(n), true) => ints.format(*n),
                (Value::I32(n), true) => ints.format(*n),
                (Value::Bool(b), _) => {
                    if *b {
                        "1"
                    } else {
                        "0"
                    }
                }
                _ => match v.as_f64() {
                    Some(x) => float(&mut floats, x * f.factor),
                    None => return,
                },
            };
            out.push_str(sample);
            out.push_str(total);
            out.push_str(labels);
            out.push_str("} ");
            out.push_str(value);
            out.push('\n');
        }
    }
}

/// A float as Prometheus reads it (`1.0`, `0.25`, `NaN`, `+Inf`).
fn float(buf: &mut ryu::Buffer, x: f64) -> &str {
    if x.is_nan() {
        "NaN"
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }
    } else {
        buf.format_finite(x)
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halyard_cluster_model::memory::{MemoryModel, demo_element};
    use halyard_cluster_model::port::Query;

    async fn whole(model: &MemoryModel) -> String {
        let objects = model.query(&Query::default()).await.unwrap();
        kept(&ModelExposition::of(&objects)).await
    }

    async fn kept(cache: &ModelExposition) -> String {
        let text: Vec<u8> = cache.pieces(Exposition::Text).concat();
        String::from_utf8(text).unwrap()
    }

    /// A cache kept up to date by reading only what changed writes what a
    /// full read writes, after updates, creations and removals, and reads
    /// again only the objects that changed.
    #[tokio::test]
    async fn only_changes_are_read_and_the_exposition_stays_whole() {
        let model = demo_element();
        let mut cache = ModelExposition::new();
        let r = cache
            .refresh(&model, 3, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.rendered, model.len());
        assert_eq!(kept(&cache).await, whole(&model).await);
        assert!(kept(&cache).await.contains("# TYPE "));

        // Nothing changed: nothing read again.
        let r = cache
            .refresh(&model, 3, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.rendered, 0);

        // One gauge changes: one object read again, and its new value shows.
        let objects = model.query(&Query::default()).await.unwrap();
        let (o, attr) = objects
            .iter()
            .find_map(|o| {
                o.class.attributes.iter().find_map(|a| {
                    (a.metric
                        .as_ref()
                        .is_some_and(|m| m.kind == MetricKind::Gauge)
                        && matches!(a.ty, AttrType::Uint32))
                    .then_some((o.clone(), a.name))
                })
            })
            .expect("the demo has a u32 gauge");
        model
            .update(&o.name, &[(attr, Value::U32(424_242))])
            .unwrap();
        let r = cache
            .refresh(&model, 3, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.rendered, 1);
        let text = kept(&cache).await;
        assert!(text.contains("} 424242\n"), "{text}");
        assert_eq!(text, whole(&model).await);

        // A subtree goes away: its series go with it, in every page.
        let parent = objects
            .iter()
            .filter(|p| objects.iter().any(|c| c.parent_index == p.index))
            .find(|p| p.parent_index != 0)
            .expect("a contained container");
        let gone = model.remove(&parent.name);
        assert!(gone > 1);
        let r = cache
            .refresh(&model, 3, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.rendered, 0);
        assert_eq!(r.objects, model.len());
        let text = kept(&cache).await;
        assert!(!text.contains(&format!("name=\"{}\"", parent.name)));
        assert_eq!(text, whole(&model).await);
    }
}
