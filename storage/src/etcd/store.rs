//! [`EtcdStore`]: the store contract on etcd-client, confined to a key prefix.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use etcd_client as etcd;
use futures::StreamExt;

use super::config::{EtcdConnectError, EtcdStoreConfig};
use super::connect_options::{tls_options, validate};
use super::error_class::{classify, connection_broke, is_auth_error, is_unavailable, never_sent, Classified};
use super::prefix::KeyPrefix;
use crate::error::StoreError;
use crate::store::{Store, WatchStream};
use crate::types::*;

/// How long `status` waits for each member's own answer.
const MEMBER_STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the compaction-point probe waits for etcd to cancel its watch.
const COMPACT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a request is tried when no member could take it, and the pause between tries; the
/// request timeout bounds them as a whole. The balanced channel can pick a member that just died
/// several times in a row before it notices.
const ATTEMPTS: usize = 30;
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// HTTP/2 keep-alive, so that a watch on a dead member fails instead of hanging.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on an external etcd cluster. Cheap to share: clone the `Arc` it lives in.
pub struct EtcdStore {
    client: etcd::Client,
    options: etcd::ConnectOptions,
    endpoints: Vec<String>,
    prefix: KeyPrefix,
    request_timeout: Duration,
    /// One client per member client URL, for `status`; created on first use.
    member_clients: tokio::sync::Mutex<HashMap<String, etcd::Client>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connect to the cluster and prove that it answers, within `config.connect_timeout`.
    pub async fn connect(config: EtcdStoreConfig) -> Result<EtcdStore, EtcdConnectError> {
        let endpoints = validate(&config)?;
        let mut options = etcd::ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if config.uses_tls() {
            options = options.with_tls(tls_options(&config)?);
        }
        if let (Some(username), Some(password)) = (&config.username, &config.password) {
            options = options.with_user(username.clone(), password.clone());
        }

        let millis = config.connect_timeout.as_millis() as u64;
        let endpoint_list = endpoints.join(",");
        let unreachable = |reason: String| EtcdConnectError::Unreachable {
            endpoints: endpoint_list.clone(),
            millis,
            reason,
        };
        let rejected = |reason: String| EtcdConnectError::Authentication {
            username: config.username.clone().unwrap_or_default(),
            reason,
        };
        let client = match tokio::time::timeout(
            config.connect_timeout,
            etcd::Client::connect(endpoints.clone(), Some(options.clone())),
        )
        .await
        {
            Err(_) => return Err(unreachable("connecting timed out".into())),
            Ok(Err(error)) if is_auth_error(&error) => return Err(rejected(error.to_string())),
            Ok(Err(etcd::Error::InvalidArgs(reason))) => return Err(EtcdConnectError::InvalidConfig(reason)),
            Ok(Err(error @ etcd::Error::InvalidUri(_))) => {
                return Err(EtcdConnectError::InvalidConfig(error.to_string()))
            }
            Ok(Err(error)) => return Err(unreachable(error.to_string())),
            Ok(Ok(client)) => client,
        };

        let store = EtcdStore {
            client,
            options,
            endpoints,
            prefix: KeyPrefix::new(config.prefix.as_bytes()),
            request_timeout: config.request_timeout,
            member_clients: tokio::sync::Mutex::new(HashMap::new()),
        };
        // The client connects lazily; one linearizable read proves that a member with a leader answers.
        let probe = etcd::GetOptions::new().with_count_only();
        match tokio::time::timeout(
            config.connect_timeout,
            store.client.kv_client().get(store.prefix.key(b""), Some(probe)),
        )
        .await
        {
            Err(_) => Err(unreachable("no member answered a read".into())),
            Ok(Err(error)) if is_auth_error(&error) => Err(rejected(error.to_string())),
            Ok(Err(error)) => Err(unreachable(error.to_string())),
            Ok(Ok(_)) => {
                tracing::info!(endpoints = ?store.endpoints, prefix = %config.prefix, "connected to etcd");
                Ok(store)
            }
        }
    }

    /// Run one request under the request timeout.
    async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, etcd::Error>>,
    ) -> Result<Result<T, etcd::Error>, StoreError> {
        tokio::time::timeout(self.request_timeout, request)
            .await
            .map_err(|_| StoreError::Timeout {
                millis: self.request_timeout.as_millis() as u64,
            })
    }

    /// Run a request that changes nothing, trying it again when it failed for want of a member or
    /// because its connection broke: the balanced channel may still route to a member that just died.
    /// Bounded by the request timeout as a whole and by [`ATTEMPTS`].
    async fn read<T, F, Fut>(&self, request: F) -> Result<Result<T, etcd::Error>, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd::Error>>,
    {
        self.retrying(request, |error| is_unavailable(error) || connection_broke(error))
            .await
    }

    /// Run a request that changes the store, trying it again only when it certainly never reached a
    /// member (the connection could not be opened): a request that was sent may have been applied.
    async fn write<T, F, Fut>(&self, request: F) -> Result<Result<T, etcd::Error>, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd::Error>>,
    {
        self.retrying(request, never_sent).await
    }

    async fn retrying<T, F, Fut>(
        &self,
        mut request: F,
        retry: impl Fn(&etcd::Error) -> bool,
    ) -> Result<Result<T, etcd::Error>, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let timeout = || StoreError::Timeout {
            millis: self.request_timeout.as_millis() as u64,
        };
        for _ in 1..ATTEMPTS {
            match tokio::time::timeout_at(deadline, request())
                .await
                .map_err(|_| timeout())?
            {
                Err(error) if retry(&error) => {
                    tracing::debug!(%error, "etcd request failed before a member served it, trying again");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                other => return Ok(other),
            }
        }
        tokio::time::timeout_at(deadline, request())
            .await
            .map_err(|_| timeout())
    }

    /// The store error of an etcd error. `revision` and `lease` are the request's, for the cases
    /// that name them.
    async fn store_error(&self, error: etcd::Error, revision: i64, lease: i64) -> StoreError {
        match classify(&error) {
            Classified::Compacted => {
                let compact_revision = self.compact_revision().await.unwrap_or(revision + 1);
                StoreError::Compacted {
                    requested: revision,
                    compact_revision,
                }
            }
            Classified::FutureRevision => {
                let current = self.current_revision().await.unwrap_or(revision - 1);
                StoreError::FutureRevision {
                    requested: revision,
                    current,
                }
            }
            Classified::LeaseNotFound => StoreError::LeaseNotFound(lease),
            Classified::LeaseExists => StoreError::LeaseExists(lease),
            Classified::Other(error) => error,
        }
    }

    /// A linearizable count of the key at the prefix itself, at `revision` (0: now): the cheapest
    /// request that still goes through the leader.
    fn count_prefix_key(&self, revision: i64) -> impl Future<Output = Result<etcd::GetResponse, etcd::Error>> + use<> {
        let (mut kv, key) = (self.client.kv_client(), self.prefix.key(b""));
        let options = etcd::GetOptions::new().with_count_only().with_revision(revision);
        async move { kv.get(key, Some(options)).await }
    }

    async fn current_revision(&self) -> Option<i64> {
        let response = self.read(|| self.count_prefix_key(0)).await.ok()?.ok()?;
        Some(header(response.header()).revision)
    }

    /// The revision etcd compacted up to; `0` when nothing below revision 1 is missing. etcd does not
    /// report it directly: a read at revision 1 tells whether anything was compacted, and a watch from
    /// revision 1 is cancelled with the compaction point.
    async fn compact_revision(&self) -> Option<i64> {
        match self.read(|| self.count_prefix_key(1)).await.ok()? {
            Ok(_) => return Some(0),
            Err(error) if matches!(classify(&error), Classified::Compacted) => {}
            Err(_) => return None,
        }
        let probe = async {
            let options = etcd::WatchOptions::new().with_start_revision(1);
            let mut stream = self
                .client
                .watch_client()
                .watch(self.prefix.key(b""), Some(options))
                .await
                .ok()?;
            while let Ok(Some(response)) = stream.message().await {
                if response.compact_revision() > 0 {
                    return Some(response.compact_revision());
                }
                if response.canceled() {
                    return None;
                }
            }
            None
        };
        tokio::time::timeout(COMPACT_PROBE_TIMEOUT, probe).await.ok().flatten()
    }

    fn key_value(&self, kv: &etcd::KeyValue) -> KeyValue {
        KeyValue {
            key: self.prefix.strip(kv.key()).unwrap_or_else(|| kv.key().to_vec()),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }

    fn get_options(&self, request: &RangeRequest) -> Result<(Vec<u8>, etcd::GetOptions), StoreError> {
        let (key, range_end) = self.prefix.range(&request.key, &request.range_end)?;
        let mut options = etcd::GetOptions::new()
            .with_limit(request.limit)
            .with_revision(request.revision);
        if !range_end.is_empty() {
            options = options.with_range(range_end);
        }
        if request.consistency == ReadConsistency::Serializable {
            options = options.with_serializable();
        }
        if request.count_only {
            options = options.with_count_only();
        }
        if request.keys_only {
            options = options.with_keys_only();
        }
        if request.sort_order == SortOrder::Descend {
            options = options.with_sort(etcd::SortTarget::Key, etcd::SortOrder::Descend);
        }
        Ok((key, options))
    }

    fn range_response(&self, response: &etcd::GetResponse) -> RangeResponse {
        RangeResponse {
            header: header(response.header()),
            kvs: response.kvs().iter().map(|kv| self.key_value(kv)).collect(),
            more: response.more(),
            count: response.count(),
        }
    }

    fn put_parts(&self, request: &PutRequest) -> Result<(Vec<u8>, etcd::PutOptions), StoreError> {
        if request.key.is_empty() {
            return Err(StoreError::InvalidArgument("key is not provided".into()));
        }
        let mut options = etcd::PutOptions::new().with_lease(request.lease);
        if request.prev_kv {
            options = options.with_prev_key();
        }
        Ok((self.prefix.key(&request.key), options))
    }

    fn put_response(&self, response: &etcd::PutResponse) -> PutResponse {
        PutResponse {
            header: header(response.header()),
            prev_kv: response.prev_key().map(|kv| self.key_value(kv)),
        }
    }

    fn delete_parts(&self, request: &DeleteRangeRequest) -> Result<(Vec<u8>, etcd::DeleteOptions), StoreError> {
        let (key, range_end) = self.prefix.range(&request.key, &request.range_end)?;
        let mut options = etcd::DeleteOptions::new();
        if !range_end.is_empty() {
            options = options.with_range(range_end);
        }
        if request.prev_kv {
            options = options.with_prev_key();
        }
        Ok((key, options))
    }

    fn delete_response(&self, response: &etcd::DeleteResponse) -> DeleteRangeResponse {
        DeleteRangeResponse {
            header: header(response.header()),
            deleted: response.deleted(),
            prev_kvs: response.prev_kvs().iter().map(|kv| self.key_value(kv)).collect(),
        }
    }

    fn etcd_txn(&self, request: &TxnRequest) -> Result<etcd::Txn, StoreError> {
        let mut compares = Vec::with_capacity(request.compare.len());
        for compare in &request.compare {
            let (key, range_end) = self.prefix.range(&compare.key, &compare.range_end)?;
            let operation = match compare.result {
                CompareResult::Equal => etcd::CompareOp::Equal,
                CompareResult::Greater => etcd::CompareOp::Greater,
                CompareResult::Less => etcd::CompareOp::Less,
                CompareResult::NotEqual => etcd::CompareOp::NotEqual,
            };
            let mut converted = match &compare.target {
                CompareTarget::Version(version) => etcd::Compare::version(key, operation, *version),
                CompareTarget::CreateRevision(revision) => etcd::Compare::create_revision(key, operation, *revision),
                CompareTarget::ModRevision(revision) => etcd::Compare::mod_revision(key, operation, *revision),
                CompareTarget::Value(value) => etcd::Compare::value(key, operation, value.clone()),
                CompareTarget::Lease(lease) => etcd::Compare::lease(key, operation, *lease),
            };
            if !range_end.is_empty() {
                converted = converted.with_range(range_end);
            }
            compares.push(converted);
        }
        let success = self.etcd_ops(&request.success)?;
        let failure = self.etcd_ops(&request.failure)?;
        Ok(etcd::Txn::new().when(compares).and_then(success).or_else(failure))
    }

    fn etcd_ops(&self, operations: &[TxnOp]) -> Result<Vec<etcd::TxnOp>, StoreError> {
        operations
            .iter()
            .map(|operation| {
                Ok(match operation {
                    TxnOp::Range(request) => {
                        let (key, options) = self.get_options(request)?;
                        etcd::TxnOp::get(key, Some(options))
                    }
                    TxnOp::Put(request) => {
                        let (key, options) = self.put_parts(request)?;
                        etcd::TxnOp::put(key, request.value.clone(), Some(options))
                    }
                    TxnOp::DeleteRange(request) => {
                        let (key, options) = self.delete_parts(request)?;
                        etcd::TxnOp::delete(key, Some(options))
                    }
                    TxnOp::Txn(request) => etcd::TxnOp::txn(self.etcd_txn(request)?),
                })
            })
            .collect()
    }

    fn txn_response(&self, response: &etcd::TxnResponse) -> TxnResponse {
        TxnResponse {
            header: header(response.header()),
            succeeded: response.succeeded(),
            responses: response
                .op_responses()
                .iter()
                .map(|operation| match operation {
                    etcd::TxnOpResponse::Get(range) => TxnOpResponse::Range(self.range_response(range)),
                    etcd::TxnOpResponse::Put(put) => TxnOpResponse::Put(self.put_response(put)),
                    etcd::TxnOpResponse::Delete(delete) => TxnOpResponse::DeleteRange(self.delete_response(delete)),
                    etcd::TxnOpResponse::Txn(txn) => TxnOpResponse::Txn(self.txn_response(txn)),
                })
                .collect(),
        }
    }

    /// A client talking to one member only, for that member's own status.
    async fn member_client(&self, url: &str) -> Option<etcd::Client> {
        if let Some(client) = self.member_clients.lock().await.get(url) {
            return Some(client.clone());
        }
        let connect = etcd::Client::connect([url], Some(self.options.clone()));
        let client = tokio::time::timeout(MEMBER_STATUS_TIMEOUT, connect).await.ok()?.ok()?;
        self.member_clients.lock().await.insert(url.to_string(), client.clone());
        Some(client)
    }

    /// The id of the member answering at `url` and its own status (term, commit and applied index,
    /// revision), when it answers in time.
    async fn member_answers(&self, url: String) -> Option<(u64, MemberProgress)> {
        let client = self.member_client(&url).await?;
        let status = tokio::time::timeout(MEMBER_STATUS_TIMEOUT, client.maintenance_client().status())
            .await
            .ok()?
            .ok()?;
        let answering = header(status.header());
        Some((answering.member_id, member_progress(&status)))
    }
}

impl Store for EtcdStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        let (key, options) = self.get_options(&request)?;
        let get = || {
            let (mut kv, key, options) = (self.client.kv_client(), key.clone(), options.clone());
            async move { kv.get(key, Some(options)).await }
        };
        match self.read(get).await? {
            Ok(response) => Ok(self.range_response(&response)),
            Err(error) => Err(self.store_error(error, request.revision, 0).await),
        }
    }

    async fn put(&self, request: PutRequest) -> Result<PutResponse, StoreError> {
        let (key, options) = self.put_parts(&request)?;
        let put = || {
            let (mut kv, key, value, options) = (
                self.client.kv_client(),
                key.clone(),
                request.value.clone(),
                options.clone(),
            );
            async move { kv.put(key, value, Some(options)).await }
        };
        match self.write(put).await? {
            Ok(response) => Ok(self.put_response(&response)),
            Err(error) => Err(self.store_error(error, 0, request.lease).await),
        }
    }

    async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse, StoreError> {
        let (key, options) = self.delete_parts(&request)?;
        let delete = || {
            let (mut kv, key, options) = (self.client.kv_client(), key.clone(), options.clone());
            async move { kv.delete(key, Some(options)).await }
        };
        match self.write(delete).await? {
            Ok(response) => Ok(self.delete_response(&response)),
            Err(error) => Err(self.store_error(error, 0, 0).await),
        }
    }

    async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        let txn = self.etcd_txn(&request)?;
        let txn = || {
            let (mut kv, txn) = (self.client.kv_client(), txn.clone());
            async move { kv.txn(txn).await }
        };
        match self.write(txn).await? {
            Ok(response) => Ok(self.txn_response(&response)),
            Err(error) => {
                let lease = first_lease(&request);
                let revision = first_read_revision(&request);
                Err(self.store_error(error, revision, lease).await)
            }
        }
    }

    async fn compact(&self, request: CompactRequest) -> Result<CompactResponse, StoreError> {
        // etcd compacts its whole history, not just the prefix: see the module documentation.
        match self
            .call(self.client.kv_client().compact(request.revision, None))
            .await?
        {
            Ok(response) => Ok(CompactResponse {
                header: header(response.header()),
            }),
            Err(error) => Err(self.store_error(error, request.revision, 0).await),
        }
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream, StoreError> {
        let (key, range_end) = self.prefix.range(&request.key, &request.range_end)?;
        let mut options = etcd::WatchOptions::new().with_start_revision(request.start_revision);
        if !range_end.is_empty() {
            options = options.with_range(range_end);
        }
        if request.prev_kv {
            options = options.with_prev_key();
        }
        if request.progress_notify {
            options = options.with_progress_notify();
        }
        let create = || {
            let (mut watch, key, options) = (self.client.watch_client(), key.clone(), options.clone());
            async move { watch.watch(key, Some(options)).await }
        };
        let mut stream = match self.read(create).await? {
            Ok(stream) => stream,
            Err(error) => return Err(self.store_error(error, request.start_revision, 0).await),
        };
        // Wait for etcd to confirm the watch, so that every write made after `watch` returns is seen.
        let created = match self.call(stream.message()).await? {
            Ok(Some(response)) => response,
            Ok(None) => {
                return Err(StoreError::Unavailable(
                    "etcd closed the watch before creating it".into(),
                ))
            }
            Err(error) => return Err(self.store_error(error, request.start_revision, 0).await),
        };
        if created.canceled() {
            return Err(watch_cancelled(&created, request.start_revision));
        }

        let state = WatchState {
            stream,
            prefix: self.prefix.clone(),
            next_revision: request.start_revision,
            done: false,
        };
        let events = futures::stream::unfold(state, |mut state| async move {
            if state.done {
                return None;
            }
            loop {
                match state.stream.message().await {
                    Ok(Some(response)) => {
                        if response.canceled() {
                            state.done = true;
                            return Some((Err(watch_cancelled(&response, state.next_revision)), state));
                        }
                        if response.created() {
                            continue;
                        }
                        let converted = state.convert(&response);
                        if let Some(last) = converted.events.last() {
                            state.next_revision = last.kv.mod_revision + 1;
                        }
                        return Some((Ok(converted), state));
                    }
                    Ok(None) => {
                        state.done = true;
                        let error = StoreError::Unavailable("etcd closed the watch stream".into());
                        return Some((Err(error), state));
                    }
                    Err(error) => {
                        state.done = true;
                        let error = match classify(&error) {
                            Classified::Other(error) => error,
                            _ => StoreError::Unavailable(error.to_string()),
                        };
                        return Some((Err(error), state));
                    }
                }
            }
        });
        Ok(events.boxed())
    }

    async fn lease_grant(&self, request: LeaseGrantRequest) -> Result<LeaseGrantResponse, StoreError> {
        let options = etcd::LeaseGrantOptions::new().with_id(request.id);
        let grant = || {
            let (mut lease, options) = (self.client.lease_client(), options.clone());
            async move { lease.grant(request.ttl, Some(options)).await }
        };
        match self.write(grant).await? {
            Ok(response) if !response.error().is_empty() => Err(StoreError::Internal(response.error().to_string())),
            Ok(response) => Ok(LeaseGrantResponse {
                header: header(response.header()),
                id: response.id(),
                ttl: response.ttl(),
            }),
            Err(error) => Err(self.store_error(error, 0, request.id).await),
        }
    }

    async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, StoreError> {
        let revoke = || {
            let mut lease = self.client.lease_client();
            async move { lease.revoke(id).await }
        };
        match self.write(revoke).await? {
            Ok(response) => Ok(LeaseRevokeResponse {
                header: header(response.header()),
            }),
            Err(error) => Err(self.store_error(error, 0, id).await),
        }
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
        let renew = async {
            // Opening the stream renews once but hides the answer; the second renewal reports the ttl.
            let (mut keeper, mut stream) = self.client.lease_client().keep_alive(id).await?;
            keeper.keep_alive().await?;
            stream.message().await
        };
        match self.call(renew).await? {
            Ok(Some(response)) if response.ttl() > 0 => Ok(LeaseKeepAliveResponse {
                header: header(response.header()),
                id: response.id(),
                ttl: response.ttl(),
            }),
            Ok(_) => Err(StoreError::LeaseNotFound(id)),
            Err(error) => Err(self.store_error(error, 0, id).await),
        }
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        let options = with_keys.then(|| etcd::LeaseTimeToLiveOptions::new().with_keys());
        let time_to_live = || {
            let (mut lease, options) = (self.client.lease_client(), options.clone());
            async move { lease.time_to_live(id, options).await }
        };
        match self.read(time_to_live).await? {
            Ok(response) => Ok(LeaseTimeToLiveResponse {
                header: header(response.header()),
                id: response.id(),
                ttl: response.ttl(),
                granted_ttl: response.granted_ttl(),
                // Keys outside the prefix are not ours to show.
                keys: response
                    .keys()
                    .iter()
                    .filter_map(|key| self.prefix.strip(key))
                    .collect(),
            }),
            Err(error) => Err(self.store_error(error, 0, id).await),
        }
    }

    async fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        let leases = || {
            let mut lease = self.client.lease_client();
            async move { lease.leases().await }
        };
        match self.read(leases).await? {
            Ok(response) => Ok(LeaseLeasesResponse {
                header: header(response.header()),
                ids: response.leases().iter().map(|lease| lease.id()).collect(),
            }),
            Err(error) => Err(self.store_error(error, 0, 0).await),
        }
    }

    async fn status(&self) -> Result<StoreStatus, StoreError> {
        let status = || {
            let mut maintenance = self.client.maintenance_client();
            async move { maintenance.status().await }
        };
        let answering = match self.read(status).await? {
            Ok(status) => status,
            Err(error) => return Err(self.store_error(error, 0, 0).await),
        };
        let answering_header = header(answering.header());
        let member_list = || {
            let mut cluster = self.client.cluster_client();
            async move { cluster.member_list().await }
        };
        let member_list = match self.read(member_list).await? {
            Ok(list) => list,
            Err(error) => return Err(self.store_error(error, 0, 0).await),
        };
        // A linearizable read succeeds only through a leader with a quorum.
        let read = self.read(|| self.count_prefix_key(0)).await;
        let (healthy, revision) = match read {
            Ok(Ok(response)) => (true, header(response.header()).revision),
            _ => (false, answering_header.revision),
        };

        let urls: Vec<Option<String>> = member_list
            .members()
            .iter()
            .map(|member| member.client_urls().first().cloned())
            .collect();
        let answers = futures::future::join_all(urls.into_iter().map(|url| async move {
            match url {
                Some(url) => self.member_answers(url).await,
                None => None,
            }
        }))
        .await;
        let leader = Some(answering.leader()).filter(|leader| *leader != 0);
        let members = member_list
            .members()
            .iter()
            .zip(answers)
            .map(|(member, answer)| {
                // The status an endpoint answers is this member's only when the member there is it.
                let (member_healthy, progress) = match answer {
                    Some((id, progress)) if id == member.id() => (true, progress),
                    _ => (false, MemberProgress::default()),
                };
                let role = if Some(member.id()) == leader {
                    MemberRole::Leader
                } else if member.is_learner() {
                    MemberRole::Learner
                } else if member_healthy {
                    MemberRole::Follower
                } else {
                    MemberRole::Unknown
                };
                Member {
                    id: member.id(),
                    address: member.client_urls().first().cloned().unwrap_or_default(),
                    role,
                    healthy: member_healthy || member.id() == answering_header.member_id,
                    health_known: true,
                    progress,
                }
            })
            .collect();
        Ok(StoreStatus {
            backend: BackendKind::Etcd,
            member_id: answering_header.member_id,
            members,
            leader,
            revision,
            compact_revision: self.compact_revision().await.unwrap_or(0),
            raft_term: answering.raft_term(),
            applied_index: answering.raft_applied_index(),
            healthy: healthy && leader.is_some(),
        })
    }
}

/// An etcd member's own Raft position, from its Status answer (etcd's raft index is its commit
/// index).
fn member_progress(status: &etcd::StatusResponse) -> MemberProgress {
    MemberProgress {
        term: Some(status.raft_term()),
        commit_index: Some(status.raft_index()),
        applied_index: Some(status.raft_applied_index()),
        revision: Some(header(status.header()).revision),
        matched_index: None,
    }
}

/// The position of one watch, carried between the items of its stream.
struct WatchState {
    stream: etcd::WatchStream,
    prefix: KeyPrefix,
    /// The first revision not delivered yet, to name in a `Compacted` error.
    next_revision: i64,
    done: bool,
}

impl WatchState {
    fn convert(&self, response: &etcd::WatchResponse) -> WatchResponse {
        let key_value = |kv: &etcd::KeyValue| KeyValue {
            key: self.prefix.strip(kv.key()).unwrap_or_else(|| kv.key().to_vec()),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        };
        WatchResponse {
            header: header(response.header()),
            events: response
                .events()
                .iter()
                .filter_map(|event| {
                    let kv = event.kv()?;
                    Some(Event {
                        kind: match event.event_type() {
                            etcd::EventType::Put => EventKind::Put,
                            etcd::EventType::Delete => EventKind::Delete,
                        },
                        kv: key_value(kv),
                        prev_kv: event.prev_kv().map(key_value),
                    })
                })
                .collect(),
        }
    }
}

fn watch_cancelled(response: &etcd::WatchResponse, requested: i64) -> StoreError {
    if response.compact_revision() > 0 {
        StoreError::Compacted {
            requested,
            compact_revision: response.compact_revision(),
        }
    } else {
        StoreError::Unavailable(format!("etcd cancelled the watch: {}", response.cancel_reason()))
    }
}

fn header(header: Option<&etcd::ResponseHeader>) -> ResponseHeader {
    header
        .map(|header| ResponseHeader {
            revision: header.revision(),
            member_id: header.member_id(),
            raft_term: header.raft_term(),
        })
        .unwrap_or_default()
}

/// The lease of the first put in a txn, to name in a `LeaseNotFound` error.
fn first_lease(request: &TxnRequest) -> i64 {
    request
        .success
        .iter()
        .chain(&request.failure)
        .find_map(|operation| match operation {
            TxnOp::Put(put) if put.lease != 0 => Some(put.lease),
            TxnOp::Txn(nested) => Some(first_lease(nested)).filter(|lease| *lease != 0),
            _ => None,
        })
        .unwrap_or(0)
}

/// The revision of the first historical read in a txn, to name in a `Compacted` error.
fn first_read_revision(request: &TxnRequest) -> i64 {
    request
        .success
        .iter()
        .chain(&request.failure)
        .find_map(|operation| match operation {
            TxnOp::Range(range) if range.revision != 0 => Some(range.revision),
            TxnOp::Txn(nested) => Some(first_read_revision(nested)).filter(|revision| *revision != 0),
            _ => None,
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    fn grpc(code: Code, message: &str) -> etcd::Error {
        etcd::Error::GRpcStatus(Status::new(code, message))
    }

    /// Only a request whose connection could not be opened is sent again whatever it does; one whose
    /// connection broke in flight has an unknown outcome, and etcd's own refusals keep their meaning.
    #[test]
    fn connection_failures_are_told_apart_by_whether_the_request_left() {
        let refused = grpc(Code::Unavailable, "tcp connect error");
        assert!(never_sent(&refused) && !connection_broke(&refused));
        assert!(matches!(
            classify(&refused),
            Classified::Other(StoreError::Unavailable(_))
        ));

        let broken = grpc(Code::Unknown, "transport error");
        assert!(connection_broke(&broken) && !never_sent(&broken));
        assert!(matches!(
            classify(&broken),
            Classified::Other(StoreError::Interrupted(_))
        ));

        let no_leader = grpc(Code::Unavailable, "etcdserver: no leader");
        assert!(!never_sent(&no_leader) && !connection_broke(&no_leader));
        let timed_out = grpc(Code::Unavailable, "etcdserver: request timed out");
        assert!(matches!(
            classify(&timed_out),
            Classified::Other(StoreError::Timeout { .. })
        ));
        let other = grpc(Code::Unknown, "something else");
        assert!(matches!(classify(&other), Classified::Other(StoreError::Internal(_))));
    }
}
