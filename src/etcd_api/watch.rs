//! etcd's Watch service: one bidirectional stream carries any number of watches.
//!
//! A session task reads the client's requests (create, cancel, progress); each watch has a
//! forwarding task that turns the store's [`kuboard_storage::WatchStream`] into etcd responses on the
//! shared outbound channel. What the client sees, as from etcd 3.4:
//!
//! - a `created` response first (header revision = the member's revision at creation), then events;
//! - a start revision below the compaction point: `created`, then a response with `canceled` and
//!   `compact_revision` (the Go client reports it as "required revision has been compacted");
//! - a cancel request: a `canceled` response after which no event of that watch follows;
//! - a progress request: a response with watch id -1 whose revision every watch of the stream has
//!   delivered all events up to.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use etcd_client::proto::{PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};
use futures::{Stream, StreamExt};
use kuboard_storage::{EventKind, Store, StoreError, WatchRequest, WatchStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::access::{Credentials, Need, Op};
use super::context::ApiContext;
use super::convert;
use super::errors::{status_of, STOPPED};

/// Responses waiting for the client, per stream. Forwarders wait when it is full, so a slow client
/// slows its own watches and nobody else's.
const OUTBOUND_CAPACITY: usize = 256;
/// etcd's `clientv3.InvalidWatchID`: a progress response meant for every watch of the stream.
const EVERY_WATCH: i64 = -1;
/// etcd's `WatchCreateRequest.FilterType` numbers.
const FILTER_NO_PUT: i32 = 0;
const FILTER_NO_DELETE: i32 = 1;
/// etcd's text for a client-chosen watch id already in use on the stream.
const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

type Outbound = mpsc::Sender<Result<PbWatchResponse, Status>>;

pub(super) struct WatchService<S> {
    pub ctx: ApiContext<S>,
}

type WatchResponseStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<S: Store + Clone> PbWatchService for WatchService<S> {
    type WatchStream = WatchResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<WatchResponseStream>, Status> {
        let credentials = Credentials::of(&request);
        let inbound = request.into_inner();
        let (outbound, receiver) = mpsc::channel(OUTBOUND_CAPACITY);
        let session = WatchSession {
            ctx: self.ctx.clone(),
            credentials,
            outbound,
            watches: HashMap::new(),
            next_watch_id: 0,
        };
        tokio::spawn(session.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// One watch of a session.
struct ActiveWatch {
    forwarder: JoinHandle<()>,
    /// Every event of this watch up to this revision has been queued for the client.
    delivered_through: Arc<AtomicI64>,
}

struct WatchSession<S> {
    ctx: ApiContext<S>,
    /// Who opened the stream (its `token`, its client certificate), checked at every watch
    /// created on it.
    credentials: Credentials,
    outbound: Outbound,
    watches: HashMap<i64, ActiveWatch>,
    next_watch_id: i64,
}

/// What a create request asks for, taken out of etcd's nested message.
struct CreateWatch {
    watch_id: i64,
    request: WatchRequest,
    filters: Vec<i32>,
}

impl<S: Store + Clone> WatchSession<S> {
    async fn run(mut self, mut inbound: Streaming<PbWatchRequest>) {
        loop {
            let message = tokio::select! {
                message = inbound.message() => message,
                // The client went away: nothing more to read or send.
                () = self.outbound.closed() => break,
                () = self.ctx.stopped() => {
                    let _ = self.outbound.send(Err(Status::new(Code::Unavailable, STOPPED))).await;
                    break;
                }
            };
            let request = match message {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%status, "etcd API watch stream ended by the client");
                    break;
                }
            };
            let handled = match request.request_union {
                Some(PbWatchRequestUnion::CreateRequest(create)) => {
                    let mut key = create.key;
                    // As etcd: an empty key means the key "\0"; a range end "\0" means every key
                    // from `key` on, which is also the store's convention.
                    if key.is_empty() {
                        key = vec![0];
                    }
                    let create = CreateWatch {
                        watch_id: create.watch_id,
                        request: WatchRequest {
                            key,
                            range_end: create.range_end,
                            start_revision: create.start_revision,
                            prev_kv: create.prev_kv,
                            progress_notify: create.progress_notify,
                        },
                        filters: create.filters,
                    };
                    self.create(create).await
                }
                Some(PbWatchRequestUnion::CancelRequest(cancel)) => self.cancel(cancel.watch_id).await,
                Some(PbWatchRequestUnion::ProgressRequest(_)) => self.progress().await,
                None => Ok(()),
            };
            if handled.is_err() {
                // The outbound channel is closed: the client is gone.
                break;
            }
        }
        for (_, watch) in self.watches.drain() {
            watch.forwarder.abort();
        }
    }

    async fn send(&self, response: PbWatchResponse) -> Result<(), ()> {
        self.outbound.send(Ok(response)).await.map_err(|_| ())
    }

    async fn create(&mut self, create: CreateWatch) -> Result<(), ()> {
        self.watches.retain(|_, watch| !watch.forwarder.is_finished());
        let need = Need::Range(Op::Read, create.request.key.clone(), create.request.range_end.clone());
        if let Err(status) = self.ctx.authorize(&self.credentials, &[need]).await {
            // etcd puts the whole gRPC error text in the cancel reason.
            let reason = format!("rpc error: code = {:?} desc = {}", status.code(), status.message());
            return self.refuse_create(reason).await;
        }
        let header = match self.ctx.current_store_header().await {
            Ok(header) => header,
            Err(status) => return self.refuse_create(status.message().to_string()).await,
        };
        let watch_id = if create.watch_id != 0 {
            if self.watches.contains_key(&create.watch_id) {
                return self.refuse_create(DUPLICATE_WATCH_ID.to_string()).await;
            }
            create.watch_id
        } else {
            while self.watches.contains_key(&self.next_watch_id) {
                self.next_watch_id += 1;
            }
            let id = self.next_watch_id;
            self.next_watch_id += 1;
            id
        };
        let mut request = create.request;
        // "From now on" is resolved here, against the revision the created response reports, so
        // that the response and the first event agree even if writes land in between.
        if request.start_revision == 0 {
            request.start_revision = header.revision + 1;
        }
        let start_revision = request.start_revision;
        let created = PbWatchResponse {
            header: self.ctx.header(header),
            watch_id,
            created: true,
            ..Default::default()
        };
        match self.ctx.store.watch(request).await {
            Ok(stream) => {
                self.send(created).await?;
                let delivered_through = Arc::new(AtomicI64::new(start_revision - 1));
                let forwarder = tokio::spawn(forward(
                    self.ctx.clone(),
                    stream,
                    watch_id,
                    create.filters,
                    delivered_through.clone(),
                    self.outbound.clone(),
                ));
                self.watches.insert(
                    watch_id,
                    ActiveWatch {
                        forwarder,
                        delivered_through,
                    },
                );
                Ok(())
            }
            Err(StoreError::Compacted { compact_revision, .. }) => {
                self.send(created).await?;
                self.send(compacted_response(&self.ctx, header, watch_id, compact_revision))
                    .await
            }
            Err(error) => self.refuse_create(status_of(&error).message().to_string()).await,
        }
    }

    /// etcd's answer to a create it could not honour: created and canceled at once, with a reason.
    async fn refuse_create(&self, reason: String) -> Result<(), ()> {
        let header = self.ctx.current_header().await;
        self.send(PbWatchResponse {
            header,
            watch_id: EVERY_WATCH,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        })
        .await
    }

    async fn cancel(&mut self, watch_id: i64) -> Result<(), ()> {
        // etcd does not answer the cancellation of a watch it does not know.
        let Some(watch) = self.watches.remove(&watch_id) else {
            return Ok(());
        };
        watch.forwarder.abort();
        // Waiting for the forwarder to stop guarantees that no event of this watch follows the
        // canceled response.
        let _ = watch.forwarder.await;
        let header = self.ctx.current_header().await;
        self.send(PbWatchResponse {
            header,
            watch_id,
            canceled: true,
            ..Default::default()
        })
        .await
    }

    async fn progress(&self) -> Result<(), ()> {
        let mut header = match self.ctx.current_store_header().await {
            Ok(header) => header,
            // Without a header there is nothing truthful to report; the client asks again.
            Err(_) => return Ok(()),
        };
        // A revision is only a promise once every live watch has delivered its events up to it.
        let delivered = self
            .watches
            .values()
            .filter(|watch| !watch.forwarder.is_finished())
            .map(|watch| watch.delivered_through.load(Ordering::SeqCst))
            .min();
        if let Some(delivered) = delivered {
            header.revision = header.revision.min(delivered);
        }
        self.send(PbWatchResponse {
            header: self.ctx.header(header),
            watch_id: EVERY_WATCH,
            ..Default::default()
        })
        .await
    }
}

fn compacted_response<S: Store + Clone>(
    ctx: &ApiContext<S>,
    header: kuboard_storage::ResponseHeader,
    watch_id: i64,
    compact_revision: i64,
) -> PbWatchResponse {
    PbWatchResponse {
        header: ctx.header(header),
        watch_id,
        canceled: true,
        compact_revision,
        ..Default::default()
    }
}

/// Carry one watch's store stream to the client until it ends, fails or is aborted.
async fn forward<S: Store + Clone>(
    ctx: ApiContext<S>,
    mut stream: WatchStream,
    watch_id: i64,
    filters: Vec<i32>,
    delivered_through: Arc<AtomicI64>,
    outbound: Outbound,
) {
    let no_put = filters.contains(&FILTER_NO_PUT);
    let no_delete = filters.contains(&FILTER_NO_DELETE);
    loop {
        let response = match stream.next().await {
            Some(Ok(batch)) => {
                let is_progress = batch.events.is_empty();
                let last_event_revision = batch.events.last().map(|event| event.kv.mod_revision);
                let events: Vec<_> = batch
                    .events
                    .into_iter()
                    .filter(|event| match event.kind {
                        EventKind::Put => !no_put,
                        EventKind::Delete => !no_delete,
                    })
                    .map(convert::event)
                    .collect();
                let response = (is_progress || !events.is_empty()).then(|| PbWatchResponse {
                    header: ctx.header(batch.header),
                    watch_id,
                    events,
                    ..Default::default()
                });
                if let Some(response) = response {
                    if outbound.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
                // An empty batch promises that everything up to its header revision was delivered.
                let through = last_event_revision.unwrap_or(batch.header.revision);
                delivered_through.fetch_max(through, Ordering::SeqCst);
                continue;
            }
            Some(Err(StoreError::Compacted { compact_revision, .. })) => {
                let header = ctx
                    .current_store_header()
                    .await
                    .unwrap_or(kuboard_storage::ResponseHeader {
                        revision: 0,
                        member_id: ctx.member_id,
                        raft_term: 0,
                    });
                compacted_response(&ctx, header, watch_id, compact_revision)
            }
            Some(Err(error)) => canceled_response(&ctx, watch_id, status_of(&error).message()).await,
            None => canceled_response(&ctx, watch_id, STOPPED).await,
        };
        let _ = outbound.send(Ok(response)).await;
        return;
    }
}

async fn canceled_response<S: Store + Clone>(ctx: &ApiContext<S>, watch_id: i64, reason: &str) -> PbWatchResponse {
    PbWatchResponse {
        header: ctx.current_header().await,
        watch_id,
        canceled: true,
        cancel_reason: reason.to_string(),
        ..Default::default()
    }
}
