//! Watches: a replay of the history from the start revision, then live events.
//!
//! Every commit publishes its events on one bounded broadcast channel, so `apply` never waits for a
//! watcher. A watcher that falls more than the channel's capacity behind (or that sees a revision it
//! cannot account for) goes back to reading the history from its next revision, and ends with
//! `Compacted` if that revision was compacted meanwhile. Each watcher remembers the next revision it
//! owes its reader, which makes replay and live delivery meet without gap or duplicate.

use std::sync::{Arc, Weak};
use std::time::Duration;

use kuboard_storage::keys::in_range;
use kuboard_storage::{Event, EventKind, KeyValue, StoreError, WatchRequest, WatchResponse, WatchStream};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::keys::{parse_revision_key, revision_key};
use super::range::{history_put, previous_entry};
use super::records::{decode, HistoryRecord};
use super::shared::{read, Shared};
use super::trees::header;
use super::watch_hub::HubMessage;
use std::sync::atomic::Ordering;

/// History records a catching-up watcher reads per response (a response never splits a revision).
const HISTORY_CHUNK: usize = 1000;

pub(super) fn start(inner: &Arc<Shared>, request: WatchRequest) -> Result<WatchStream, StoreError> {
    if request.start_revision < 0 {
        return Err(StoreError::InvalidArgument(
            "start revision must not be negative".to_string(),
        ));
    }
    // Subscribe before reading the revision: every revision after the one read is then published
    // to this receiver.
    let receiver = inner.hub.sender.subscribe();
    let (current, compacted) = {
        let _state = read(&inner.state);
        (
            inner.revision.load(Ordering::SeqCst),
            inner.compact_revision.load(Ordering::SeqCst),
        )
    };
    if request.start_revision > 0 && request.start_revision < compacted {
        return Err(StoreError::Compacted {
            requested: request.start_revision,
            compact_revision: compacted,
        });
    }
    let next_revision = if request.start_revision == 0 {
        current + 1
    } else {
        request.start_revision
    };
    let progress_interval = request
        .progress_notify
        .then(|| Duration::from_millis(inner.progress_interval_millis.load(Ordering::SeqCst)));
    let cursor = WatchCursor {
        inner: Arc::downgrade(inner),
        request,
        next_revision,
        receiver,
        catching_up: next_revision <= current,
        progress_interval,
    };
    Ok(Box::pin(futures::stream::unfold(Some(cursor), |cursor| async move {
        let mut cursor = cursor?;
        let item = cursor.next_response().await?;
        let keep_going = item.is_ok();
        Some((item, keep_going.then_some(cursor)))
    })))
}

struct WatchCursor {
    /// Weak, so that open watches do not keep a closed state machine alive.
    inner: Weak<Shared>,
    request: WatchRequest,
    /// The first revision not yet delivered.
    next_revision: i64,
    receiver: broadcast::Receiver<HubMessage>,
    /// True while the history holds revisions this watcher still owes.
    catching_up: bool,
    progress_interval: Option<Duration>,
}

impl WatchCursor {
    async fn next_response(&mut self) -> Option<Result<WatchResponse, StoreError>> {
        loop {
            if self.catching_up {
                // Each call either returns events or advances `next_revision` / ends the catch-up.
                match self.read_history() {
                    Err(error) => return Some(Err(error)),
                    Ok(Some(response)) => return Some(Ok(response)),
                    Ok(None) => continue,
                }
            }
            let message = match self.progress_interval {
                Some(interval) => match tokio::time::timeout(interval, self.receiver.recv()).await {
                    Ok(message) => message,
                    Err(_) => return Some(self.progress()),
                },
                None => self.receiver.recv().await,
            };
            match message {
                Ok(HubMessage::Revision { revision, events }) => {
                    if revision < self.next_revision {
                        continue;
                    }
                    let Some(events) = events.filter(|_| revision == self.next_revision) else {
                        // A revision skipped, or one published without events: the history has it.
                        self.catching_up = true;
                        continue;
                    };
                    self.next_revision = revision + 1;
                    let events: Vec<Event> = events.iter().filter_map(|event| self.deliverable(event)).collect();
                    if !events.is_empty() {
                        return Some(Ok(WatchResponse {
                            header: header(revision),
                            events,
                        }));
                    }
                }
                Ok(HubMessage::Reset) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn deliverable(&self, event: &Event) -> Option<Event> {
        if !in_range(&self.request.key, &self.request.range_end, &event.kv.key) {
            return None;
        }
        let mut event = event.clone();
        if !self.request.prev_kv {
            event.prev_kv = None;
        }
        Some(event)
    }

    fn progress(&self) -> Result<WatchResponse, StoreError> {
        let inner = self.inner.upgrade().ok_or(StoreError::ShuttingDown)?;
        Ok(WatchResponse {
            header: header(inner.revision.load(Ordering::SeqCst)),
            events: Vec::new(),
        })
    }

    /// Read the next chunk of history; `None` when it held nothing for this watcher.
    fn read_history(&mut self) -> Result<Option<WatchResponse>, StoreError> {
        let inner = self.inner.upgrade().ok_or(StoreError::ShuttingDown)?;
        let trees = read(&inner.state);
        let current = inner.revision.load(Ordering::SeqCst);
        let compacted = inner.compact_revision.load(Ordering::SeqCst);
        if self.next_revision > current {
            self.catching_up = false;
            return Ok(None);
        }
        if self.next_revision < compacted {
            return Err(StoreError::Compacted {
                requested: self.next_revision,
                compact_revision: compacted,
            });
        }
        let mut events = Vec::new();
        let mut last_revision = None;
        let mut finished = true;
        let history = trees
            .history
            .range(revision_key(self.next_revision, 0)..=revision_key(current, i64::MAX));
        for (scanned, item) in history.enumerate() {
            let (history_key, value) = item.map_err(super::MvccError::from)?;
            let (revision, sub_revision) = parse_revision_key(&history_key)?;
            if scanned >= HISTORY_CHUNK && last_revision != Some(revision) {
                self.next_revision = revision;
                finished = false;
                break;
            }
            last_revision = Some(revision);
            let HistoryRecord { key, kv } = decode("history record", &value)?;
            if !in_range(&self.request.key, &self.request.range_end, &key) {
                continue;
            }
            let prev_kv = match self.request.prev_kv {
                true => match previous_entry(&trees.index, &key, revision, sub_revision)? {
                    Some((found, found_sub, false)) => {
                        Some(history_put(&trees, found, found_sub)?.to_key_value(&key, false))
                    }
                    _ => None,
                },
                false => None,
            };
            events.push(match kv {
                Some(record) => Event {
                    kind: EventKind::Put,
                    kv: record.to_key_value(&key, false),
                    prev_kv,
                },
                None => Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key,
                        mod_revision: revision,
                        ..Default::default()
                    },
                    prev_kv,
                },
            });
        }
        if finished {
            self.next_revision = current + 1;
            self.catching_up = false;
        }
        Ok((!events.is_empty()).then(|| WatchResponse {
            header: header(current),
            events,
        }))
    }
}
