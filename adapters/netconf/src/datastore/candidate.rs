//! Running and the candidate: reading, editing, validating, replacing, discarding.

use std::collections::{BTreeMap, BTreeSet};

use halyard_cluster_model::ObjectName;
use halyard_cluster_model::model::Protocol;
use halyard_cluster_model::port::{ModelError, Principal, Query, Scope, Transaction};
use tracing::info;

use super::{Datastore, Shared};
use crate::data::{ConfigEntry, ConfigStore, Touched, change_path};
use crate::error::{RpcError, from_model};
use crate::events;

/// The candidate: running plus what was edited since the last commit (so
/// an edit and a commit cost what they touch, not the datastore size), or
/// a whole replacement after copy-config or delete-config.
#[derive(Debug, Default)]
pub(super) struct Candidate {
    pub(super) overlay: BTreeMap<ObjectName, Edited>,
    pub(super) full: Option<ConfigStore>,
}

/// What the candidate changed on one entry.
#[derive(Debug, Clone)]
pub(super) enum Edited {
    Deleted,
    /// Created in the candidate (running did not have it): the whole entry.
    Whole(ConfigEntry),
    /// Leaves changed on an entry running has (attribute indices): only
    /// those are laid over running. Running moves under a candidate (other
    /// sessions, other nodes' commits), and a commit must write what this
    /// candidate changed, never the values running had when it was edited:
    /// otherwise two sessions editing different leaves of one entry lose
    /// each other's commits.
    Leaves(ConfigEntry, BTreeSet<usize>),
}

impl Candidate {
    pub(super) fn is_modified(&self) -> bool {
        !self.overlay.is_empty() || self.full.is_some()
    }

    pub(super) fn apply_to(&self, store: &mut ConfigStore, within: impl Fn(&ObjectName) -> bool) {
        for (n, v) in self.overlay.iter().filter(|(n, _)| within(n)) {
            match v {
                Edited::Deleted => {
                    store.entries.remove(n);
                }
                Edited::Whole(e) => {
                    store.entries.insert(n.clone(), e.clone());
                }
                Edited::Leaves(e, leaves) => match store.entries.get_mut(n) {
                    Some(cur) if cur.class.name == e.class.name => {
                        for i in leaves {
                            cur.values[*i] = e.values[*i].clone();
                        }
                    }
                    // Running lost the entry meanwhile: the candidate still
                    // shows it as edited.
                    _ => {
                        store.entries.insert(n.clone(), e.clone());
                    }
                },
            }
        }
    }

    /// Records the result of an edit of the entries in `base` (the
    /// candidate's view of them).
    fn record(&mut self, base: &ConfigStore, new: ConfigStore) {
        let names: BTreeSet<&ObjectName> = base.entries.keys().chain(new.entries.keys()).collect();
        for n in names {
            let v = new.entries.get(n).cloned();
            if let Some(f) = &mut self.full {
                match v {
                    Some(e) => f.entries.insert(n.clone(), e),
                    None => f.entries.remove(n),
                };
                continue;
            }
            let edited = match (base.entries.get(n), v) {
                (_, None) => Edited::Deleted,
                (None, Some(e)) => Edited::Whole(e),
                (Some(b), Some(e)) if b.class.name != e.class.name => Edited::Whole(e),
                (Some(b), Some(e)) => {
                    let changed: BTreeSet<usize> = (0..e.values.len())
                        .filter(|i| b.values.get(*i) != e.values.get(*i))
                        .collect();
                    match self.overlay.remove(n) {
                        Some(Edited::Leaves(_, mut before)) => {
                            before.extend(changed);
                            Edited::Leaves(e, before)
                        }
                        Some(Edited::Whole(_) | Edited::Deleted) => Edited::Whole(e),
                        None if changed.is_empty() => continue,
                        None => Edited::Leaves(e, changed),
                    }
                }
            };
            self.overlay.insert(n.clone(), edited);
        }
    }
}

/// A refused transaction as an rpc-error naming the entry (or leaf) of the
/// change that failed.
fn tx_error(
    e: &halyard_cluster_model::port::TxError,
    changes: &[halyard_cluster_model::port::Change],
    from: &ConfigStore,
    to: &ConfigStore,
) -> RpcError {
    let store = if matches!(
        changes.get(e.index),
        Some(halyard_cluster_model::port::Change::Create { .. })
    ) {
        to
    } else {
        from
    };
    let path = changes.get(e.index).and_then(|c| change_path(c, store));
    from_model(&e.error, path)
}

impl Shared {
    /// The running configuration, read from the model.
    pub async fn running(&self) -> Result<ConfigStore, RpcError> {
        let objs = self
            .model
            .query(&Query::default())
            .await
            .map_err(|e| from_model(&e, None))?;
        Ok(ConfigStore::from_objects(&objs))
    }

    /// Running's entries for these names and subtrees.
    pub(super) async fn load_running(
        &self,
        names: &[ObjectName],
        subtrees: &[ObjectName],
    ) -> Result<ConfigStore, RpcError> {
        let mut objs = Vec::new();
        for n in names {
            match self.model.get(n).await {
                Ok(o) => objs.push(o),
                Err(ModelError::NoSuchObject { .. }) => {}
                Err(e) => return Err(from_model(&e, None)),
            }
        }
        for root in subtrees {
            let q = Query {
                scope: Scope::Subtree(root.clone()),
                ..Query::default()
            };
            match self.model.query(&q).await {
                Ok(v) => objs.extend(v),
                Err(ModelError::NoSuchObject { .. }) => {}
                Err(e) => return Err(from_model(&e, None)),
            }
        }
        Ok(ConfigStore::from_objects(&objs))
    }

    /// The candidate's entries for these names and subtrees.
    async fn load_candidate(
        &self,
        cand: &Candidate,
        names: &[ObjectName],
        subtrees: &[ObjectName],
    ) -> Result<ConfigStore, RpcError> {
        let wanted = |n: &ObjectName| names.contains(n) || subtrees.iter().any(|r| n.is_within(r));
        if let Some(full) = &cand.full {
            let entries = full
                .entries
                .iter()
                .filter(|(n, _)| wanted(n))
                .map(|(n, e)| (n.clone(), e.clone()))
                .collect();
            return Ok(ConfigStore { entries });
        }
        let mut s = self.load_running(names, subtrees).await?;
        cand.apply_to(&mut s, wanted);
        Ok(s)
    }

    /// The whole candidate.
    async fn materialize(&self, cand: &Candidate) -> Result<ConfigStore, RpcError> {
        if let Some(f) = &cand.full {
            return Ok(f.clone());
        }
        let mut s = self.running().await?;
        cand.apply_to(&mut s, |_| true);
        Ok(s)
    }

    /// The candidate (running when it has no pending change).
    pub async fn candidate(&self) -> Result<ConfigStore, RpcError> {
        let ds = self.ds.lock().await;
        self.materialize(&ds.candidate).await
    }

    /// The user as the model sees it: with its role; the server's own
    /// rollback of a confirmed commit is the agent's.
    pub fn principal(&self, user: &str) -> Principal {
        if user == crate::datastore::ROLLBACK_USER {
            return Principal::new(user, Protocol::Internal);
        }
        let p = Principal::new(user, Protocol::Netconf);
        let role = self
            .roles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .copied();
        match role {
            Some(role) => p.with_role(role),
            None => p,
        }
    }

    /// Records the role a user logged in with (the configuration's at
    /// start, a model user's at each login).
    pub fn set_role(&self, user: &str, role: halyard_cluster_model::access::Role) {
        self.roles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_string(), role);
    }

    /// Applies `target_store` to running as one transaction.
    pub(super) async fn apply_running(
        &self,
        by: Option<u32>,
        user: &str,
        from: &ConfigStore,
        to: &ConfigStore,
    ) -> Result<usize, RpcError> {
        let changes = from.diff(to);
        let n = changes.len();
        if n == 0 {
            return Ok(0);
        }
        let tx = Transaction {
            principal: self.principal(user),
            changes: changes.clone(),
        };
        self.model
            .transact(tx)
            .await
            .map_err(|e| tx_error(&e, &changes, from, to))?;
        let edits: Vec<(String, &'static str)> = changes
            .iter()
            .filter_map(|c| {
                use halyard_cluster_model::port::Change;
                let (store, op) = match c {
                    Change::Create { .. } => (to, "create"),
                    Change::Delete { .. } => (from, "delete"),
                    Change::Set { .. } => (from, "replace"),
                };
                change_path(c, store).map(|p| (p, op))
            })
            .collect();
        let who = by.map(|id| self.who(id));
        self.events
            .emit(events::config_change(who.as_ref(), &edits));
        Ok(n)
    }

    /// Checks that turning running into `to` is a transaction the model
    /// accepts as a whole (`<validate>`: containment, types, and what may be
    /// created or deleted at all), applying nothing.
    pub async fn validate_config(&self, user: &str, to: &ConfigStore) -> Result<(), RpcError> {
        let from = self.running().await?;
        let changes = from.diff(to);
        if changes.is_empty() {
            return Ok(());
        }
        let tx = Transaction {
            principal: self.principal(user),
            changes,
        };
        self.model
            .validate(&tx)
            .await
            .map_err(|e| tx_error(&e, &tx.changes, &from, to))
    }

    /// Edits a datastore: `edit` transforms a copy of the entries the edit
    /// touches (all of them when `touched.full`) and returns the errors it
    /// met; running is written as one transaction, the candidate is
    /// recorded. With `keep_partial` (continue-on-error) what succeeded is
    /// kept despite errors; otherwise any error leaves the target untouched.
    #[allow(clippy::too_many_arguments)]
    pub async fn edit(
        &self,
        me: u32,
        user: &str,
        target: Datastore,
        test_only: bool,
        keep_partial: bool,
        touched: &Touched,
        edit: impl FnOnce(&mut ConfigStore) -> Vec<RpcError>,
    ) -> Vec<RpcError> {
        let mut ds = self.ds.lock().await;
        if let Err(e) = Self::check_writable(&ds, target, me) {
            return vec![e];
        }
        let (names, subtrees) = (&touched.names, &touched.subtrees);
        let base = match (target, touched.full) {
            (Datastore::Running, true) => self.running().await,
            (Datastore::Running, false) => self.load_running(names, subtrees).await,
            (Datastore::Candidate, true) => self.materialize(&ds.candidate).await,
            (Datastore::Candidate, false) => {
                self.load_candidate(&ds.candidate, names, subtrees).await
            }
        };
        let base = match base {
            Ok(b) => b,
            Err(e) => return vec![e],
        };
        let mut new = base.clone();
        let mut errors = edit(&mut new);
        if !errors.is_empty() && !keep_partial {
            return errors;
        }
        if test_only {
            // test-only tests what a set would: on running, the model checks
            // the transaction (the candidate is checked whole by validate
            // and commit).
            if target == Datastore::Running {
                let changes = base.diff(&new);
                if !changes.is_empty() {
                    let tx = Transaction {
                        principal: self.principal(user),
                        changes,
                    };
                    if let Err(e) = self.model.validate(&tx).await {
                        errors.push(tx_error(&e, &tx.changes, &base, &new));
                    }
                }
            }
            return errors;
        }
        match target {
            Datastore::Running => match self.apply_running(Some(me), user, &base, &new).await {
                Ok(0) => {}
                Ok(n) => info!(session = me, changes = n, "running edited"),
                Err(e) => errors.push(e),
            },
            Datastore::Candidate => {
                // Even an edit that read the whole candidate records only
                // what it changed: a whole copy would, once committed,
                // write back every value running had at the edit.
                ds.candidate.record(&base, new);
                ds.candidate_modified_by.insert(me);
            }
        }
        errors
    }

    /// Replaces the candidate (copy-config / delete-config).
    pub async fn set_candidate(&self, me: u32, store: ConfigStore) -> Result<(), RpcError> {
        let mut ds = self.ds.lock().await;
        Self::check_writable(&ds, Datastore::Candidate, me)?;
        ds.candidate = Candidate {
            overlay: BTreeMap::new(),
            full: Some(store),
        };
        ds.candidate_modified_by.insert(me);
        Ok(())
    }

    pub async fn discard_changes(&self, me: u32) -> Result<(), RpcError> {
        let mut ds = self.ds.lock().await;
        Self::check_writable(&ds, Datastore::Candidate, me)?;
        ds.candidate = Candidate::default();
        ds.candidate_modified_by.clear();
        Ok(())
    }
}
