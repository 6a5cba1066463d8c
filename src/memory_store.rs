//! An in-process store for the server's unit tests: enough of the contract (single-key and prefix
//! reads, put, delete, txn, leases, status) to run the handlers without a Raft group, plus a
//! switch that makes every call fail as a store without quorum would.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kuboard_storage::keys::in_range;
use kuboard_storage::*;

#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    unavailable: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    revision: i64,
    kvs: BTreeMap<Vec<u8>, KeyValue>,
    leases: BTreeMap<i64, i64>,
    next_lease: i64,
}

impl MemoryStore {
    /// Makes every later call fail with `Unavailable` (or work again).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("test store switched off".into()));
        }
        Ok(self.state.lock().expect("no test panics while holding the lock"))
    }

    pub fn keys(&self) -> Vec<String> {
        let state = self.state.lock().expect("no test panics while holding the lock");
        state
            .kvs
            .keys()
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .collect()
    }
}

fn header(state: &State) -> ResponseHeader {
    ResponseHeader {
        revision: state.revision,
        member_id: 1,
        raft_term: 1,
    }
}

impl State {
    fn range(&self, request: &RangeRequest) -> RangeResponse {
        let kvs: Vec<KeyValue> = self
            .kvs
            .values()
            .filter(|kv| in_range(&request.key, &request.range_end, &kv.key))
            .cloned()
            .collect();
        RangeResponse {
            header: header(self),
            count: kvs.len() as i64,
            kvs,
            more: false,
        }
    }

    fn put(&mut self, request: &PutRequest, revision: i64) -> Result<PutResponse, StoreError> {
        if request.lease != 0 && !self.leases.contains_key(&request.lease) {
            return Err(StoreError::LeaseNotFound(request.lease));
        }
        let previous = self.kvs.get(&request.key).cloned();
        let kv = KeyValue {
            key: request.key.clone(),
            value: request.value.clone(),
            create_revision: previous.as_ref().map_or(revision, |kv| kv.create_revision),
            mod_revision: revision,
            version: previous.as_ref().map_or(1, |kv| kv.version + 1),
            lease: request.lease,
        };
        self.kvs.insert(request.key.clone(), kv);
        Ok(PutResponse {
            header: header(self),
            prev_kv: previous.filter(|_| request.prev_kv),
        })
    }

    fn delete(&mut self, request: &DeleteRangeRequest) -> DeleteRangeResponse {
        let doomed: Vec<Vec<u8>> = self
            .kvs
            .keys()
            .filter(|key| in_range(&request.key, &request.range_end, key))
            .cloned()
            .collect();
        let prev_kvs: Vec<KeyValue> = doomed.iter().filter_map(|key| self.kvs.remove(key)).collect();
        DeleteRangeResponse {
            header: header(self),
            deleted: prev_kvs.len() as i64,
            prev_kvs,
        }
    }

    fn holds(&self, compare: &Compare) -> bool {
        let kv = self.kvs.get(&compare.key);
        let ordering = match &compare.target {
            CompareTarget::Version(v) => kv.map_or(0, |kv| kv.version).cmp(v),
            CompareTarget::CreateRevision(v) => kv.map_or(0, |kv| kv.create_revision).cmp(v),
            CompareTarget::ModRevision(v) => kv.map_or(0, |kv| kv.mod_revision).cmp(v),
            CompareTarget::Lease(v) => kv.map_or(0, |kv| kv.lease).cmp(v),
            CompareTarget::Value(v) => match kv {
                Some(kv) => kv.value.cmp(v),
                None => return false,
            },
        };
        match compare.result {
            CompareResult::Equal => ordering.is_eq(),
            CompareResult::NotEqual => ordering.is_ne(),
            CompareResult::Greater => ordering.is_gt(),
            CompareResult::Less => ordering.is_lt(),
        }
    }
}

impl Store for MemoryStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        Ok(self.check()?.range(&request))
    }

    async fn put(&self, request: PutRequest) -> Result<PutResponse, StoreError> {
        let mut state = self.check()?;
        let revision = state.revision + 1;
        let response = state.put(&request, revision)?;
        state.revision = revision;
        Ok(PutResponse {
            header: header(&state),
            ..response
        })
    }

    async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse, StoreError> {
        let mut state = self.check()?;
        let mut response = state.delete(&request);
        if response.deleted > 0 {
            state.revision += 1;
            response.header = header(&state);
        }
        Ok(response)
    }

    async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        let mut state = self.check()?;
        let succeeded = request.compare.iter().all(|compare| state.holds(compare));
        let ops = if succeeded { &request.success } else { &request.failure };
        let revision = state.revision + 1;
        let mut wrote = false;
        let mut responses = Vec::new();
        for op in ops {
            responses.push(match op {
                TxnOp::Range(range) => TxnOpResponse::Range(state.range(range)),
                TxnOp::Put(put) => {
                    wrote = true;
                    TxnOpResponse::Put(state.put(put, revision)?)
                }
                TxnOp::DeleteRange(delete) => {
                    let response = state.delete(delete);
                    wrote |= response.deleted > 0;
                    TxnOpResponse::DeleteRange(response)
                }
                TxnOp::Txn(_) => return Err(StoreError::InvalidArgument("nested txn not in the test store".into())),
            });
        }
        if wrote {
            state.revision = revision;
        }
        Ok(TxnResponse {
            header: header(&state),
            succeeded,
            responses,
        })
    }

    async fn compact(&self, _request: CompactRequest) -> Result<CompactResponse, StoreError> {
        Err(StoreError::InvalidArgument("compact is not in the test store".into()))
    }

    async fn watch(&self, _request: WatchRequest) -> Result<WatchStream, StoreError> {
        Err(StoreError::InvalidArgument("watch is not in the test store".into()))
    }

    async fn lease_grant(&self, request: LeaseGrantRequest) -> Result<LeaseGrantResponse, StoreError> {
        let mut state = self.check()?;
        state.next_lease += 1;
        let id = state.next_lease;
        state.leases.insert(id, request.ttl);
        Ok(LeaseGrantResponse {
            header: header(&state),
            id,
            ttl: request.ttl,
        })
    }

    async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, StoreError> {
        let mut state = self.check()?;
        if state.leases.remove(&id).is_none() {
            return Err(StoreError::LeaseNotFound(id));
        }
        let attached: Vec<Vec<u8>> = state
            .kvs
            .values()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key.clone())
            .collect();
        if !attached.is_empty() {
            for key in attached {
                state.kvs.remove(&key);
            }
            state.revision += 1;
        }
        Ok(LeaseRevokeResponse { header: header(&state) })
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
        let state = self.check()?;
        let ttl = *state.leases.get(&id).ok_or(StoreError::LeaseNotFound(id))?;
        Ok(LeaseKeepAliveResponse {
            header: header(&state),
            id,
            ttl,
        })
    }

    async fn lease_time_to_live(&self, id: i64, _with_keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        let state = self.check()?;
        let ttl = state.leases.get(&id).copied().unwrap_or(-1);
        Ok(LeaseTimeToLiveResponse {
            header: header(&state),
            id,
            ttl,
            granted_ttl: ttl.max(0),
            keys: Vec::new(),
        })
    }

    async fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        let state = self.check()?;
        Ok(LeaseLeasesResponse {
            header: header(&state),
            ids: state.leases.keys().copied().collect(),
        })
    }

    async fn status(&self) -> Result<StoreStatus, StoreError> {
        let state = self.check()?;
        Ok(StoreStatus {
            backend: BackendKind::Raft,
            member_id: 1,
            members: vec![Member {
                id: 1,
                address: "127.0.0.1:10082".into(),
                role: MemberRole::Leader,
                healthy: true,
                health_known: true,
                progress: MemberProgress {
                    term: Some(1),
                    commit_index: Some(state.revision as u64),
                    applied_index: Some(state.revision as u64),
                    revision: Some(state.revision),
                    matched_index: None,
                },
            }],
            leader: Some(1),
            revision: state.revision,
            compact_revision: 0,
            raft_term: 1,
            applied_index: state.revision as u64,
            healthy: true,
        })
    }
}
