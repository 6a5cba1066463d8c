//! The `conformance_tests!` macro: one test per check, each on its own single-member etcd, so the
//! global checks (compaction, "nothing changed") cannot disturb each other.

use kuboard_storage::etcd::{EtcdStore, EtcdStoreConfig};
use kuboard_storage::testing::EtcdCluster;

/// The store and the etcd it talks to, which must live exactly as long as the test.
struct Fixture {
    store: EtcdStore,
    _cluster: EtcdCluster,
}

async fn fresh_fixture() -> Fixture {
    let cluster = EtcdCluster::start(1).await.expect("start a single-member etcd");
    let store = EtcdStore::connect(EtcdStoreConfig::new(cluster.client_endpoints()))
        .await
        .expect("connect to etcd");
    Fixture {
        store,
        _cluster: cluster,
    }
}

fn store_of(fixture: &Fixture) -> &EtcdStore {
    &fixture.store
}

kuboard_storage::conformance_tests!(fresh_fixture(), store_of);
