//! The naming service: names to handles, watchable.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

/// A snapshot of every binding.
pub type Bindings = Arc<BTreeMap<String, String>>;

#[derive(Debug, Clone)]
pub struct NamingService {
    tx: Arc<watch::Sender<Bindings>>,
}

impl Default for NamingService {
    fn default() -> Self {
        Self::new()
    }
}

impl NamingService {
    pub fn new() -> Self {
        NamingService {
            tx: Arc::new(watch::channel(Arc::new(BTreeMap::new())).0),
        }
    }

    pub fn bind(&self, name: &str, handle: &str) {
        self.tx.send_modify(|m| {
            Arc::make_mut(m).insert(name.to_string(), handle.to_string());
        });
    }

    pub fn unbind(&self, name: &str) {
        self.tx.send_modify(|m| {
            Arc::make_mut(m).remove(name);
        });
    }

    pub fn resolve(&self, name: &str) -> Option<String> {
        self.tx.borrow().get(name).cloned()
    }

    /// Sees every change of the bindings.
    pub fn watch(&self) -> watch::Receiver<Bindings> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_resolve_watch() {
        let n = NamingService::new();
        let mut w = n.watch();
        n.bind("component/a", "pid:1");
        w.changed().await.unwrap();
        assert_eq!(
            w.borrow().get("component/a").map(String::as_str),
            Some("pid:1")
        );
        n.unbind("component/a");
        assert_eq!(n.resolve("component/a"), None);
    }
}
