//! A control lane: how the core's decision task hands commands to the
//! tasks that carry them out (an HA-aware component's session, a process
//! or proxy supervisor) without ever waiting on them and without ever
//! dropping one.
//!
//! A bounded queue forces a choice between the two: `send().await` makes
//! the decision task wait on another task's I/O (a proxy supervisor in an
//! SSH call stalled every CRIM decision), `try_send` loses the command when
//! the queue is full (a demotion, so a process could stay primary after its
//! node lost the majority). The lane stays small instead by superseding: a
//! command makes the pending ones it replaces moot (the newest assignment
//! is the one that counts), so only a handful can ever wait.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Commands that replace earlier pending ones.
pub trait Supersedes {
    /// Whether `self`, pushed later, makes the pending `earlier` moot.
    fn supersedes(&self, earlier: &Self) -> bool;
}

/// An ordered, superseding, never-blocking command lane with one reader.
#[derive(Debug)]
pub struct Lane<T> {
    state: Mutex<(VecDeque<T>, bool)>,
    ready: Notify,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Lane {
            state: Mutex::new((VecDeque::new(), false)),
            ready: Notify::new(),
        }
    }
}

impl<T: Supersedes> Lane<T> {
    /// Queues a command after dropping the pending ones it supersedes.
    /// Never waits. Ignored once the lane is closed.
    pub fn push(&self, cmd: T) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.1 {
            return;
        }
        st.0.retain(|earlier| !cmd.supersedes(earlier));
        st.0.push_back(cmd);
        drop(st);
        self.ready.notify_one();
    }

    /// The next command without waiting.
    pub fn pop(&self) -> Option<T> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .pop_front()
    }

    /// No more commands will come: the reader gets what is pending, then
    /// `None`.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.ready.notify_one();
    }

    /// How many commands wait.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next command, waiting for one; `None` once closed and drained.
    pub async fn next(&self) -> Option<T> {
        loop {
            {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = st.0.pop_front() {
                    return Some(c);
                }
                if st.1 {
                    return None;
                }
            }
            // notify_one keeps a permit when nobody waits: no lost wake-up.
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum C {
        Role(u32),
        Other(u32),
    }

    impl Supersedes for C {
        fn supersedes(&self, earlier: &Self) -> bool {
            matches!((self, earlier), (C::Role(_), C::Role(_)))
        }
    }

    #[tokio::test]
    async fn ordered_superseding_and_closed_after_draining() {
        let lane = Lane::default();
        lane.push(C::Other(1));
        lane.push(C::Role(1));
        lane.push(C::Other(2));
        // The newest role replaces the pending one, at the back.
        lane.push(C::Role(2));
        assert_eq!(lane.len(), 3);
        assert_eq!(lane.next().await, Some(C::Other(1)));
        assert_eq!(lane.next().await, Some(C::Other(2)));
        lane.close();
        // What was pending still comes, then the end; pushes are ignored.
        lane.push(C::Other(3));
        assert_eq!(lane.next().await, Some(C::Role(2)));
        assert_eq!(lane.next().await, None);
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_and_a_pusher_never_waits() {
        let lane = std::sync::Arc::new(Lane::default());
        let reader = {
            let lane = lane.clone();
            tokio::spawn(async move { lane.next().await })
        };
        tokio::task::yield_now().await;
        // Thousands of pushes with nobody reading: none blocks, and the
        // lane holds one role plus what does not supersede.
        for i in 0..10_000 {
            lane.push(C::Role(i));
        }
        assert_eq!(lane.len(), 1);
        assert_eq!(reader.await.unwrap(), Some(C::Role(9_999)));
        assert!(lane.is_empty());
    }
}
