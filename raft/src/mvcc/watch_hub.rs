//! [`WatchHub`]: the broadcast of committed revisions to live watchers.

use std::sync::Arc;

use kuboard_storage::Event;
use tokio::sync::broadcast;

/// Revisions the broadcast channel holds for the slowest watcher before it must read the history.
pub(super) const HUB_CAPACITY: usize = 1024;
#[derive(Clone)]
pub(super) enum HubMessage {
    /// The events of one revision; `None` when the commit did not build them (nobody was watching
    /// when it started), in which case a watcher that needs them reads the history.
    Revision {
        revision: i64,
        events: Option<Arc<Vec<Event>>>,
    },
    /// The state was replaced by a snapshot: every watcher re-reads from its next revision.
    Reset,
}

pub(super) struct WatchHub {
    pub(super) sender: broadcast::Sender<HubMessage>,
}

impl WatchHub {
    pub fn new() -> WatchHub {
        WatchHub {
            sender: broadcast::channel(HUB_CAPACITY).0,
        }
    }

    pub fn has_watchers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    pub fn publish(&self, revision: i64, events: Vec<Event>) {
        let events = (!events.is_empty()).then(|| Arc::new(events));
        // An error only means that nobody is watching.
        let _ = self.sender.send(HubMessage::Revision { revision, events });
    }

    pub fn reset(&self) {
        let _ = self.sender.send(HubMessage::Reset);
    }
}
