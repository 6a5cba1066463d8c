//! Test fixtures for kuboard: a fake Kubernetes apiserver that the machine's `kubectl` works against.
//!
//! No real kube-apiserver can be installed where kuboard is tested, so this crate serves what kuboard's
//! cluster access needs, faithfully enough for kubectl: discovery, generic storage of core and apps
//! resources with resource versions, paged lists, watches with bookmarks and `410 Expired`, the three
//! patch formats, pod logs, exec/attach over websockets, impersonation with a simple RBAC, TLS with
//! client certificates or bearer tokens. Several instances share one state, as apiservers share etcd,
//! and each can be stopped, restarted, made unready, slowed or made to fail.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use kuboard_testkit::{FakeCluster, PolicyRule, Rbac};
//! let cluster = FakeCluster::start(3).await?;
//! cluster.state.create_object(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
//!     "spec": {"containers": [{"name": "web", "image": "nginx"}]}}))?;
//! let mut rbac = Rbac::default();
//! rbac.rules.push(PolicyRule::viewer_group("viewers"));
//! cluster.state.set_rbac(rbac);
//! std::fs::write("kubeconfig", cluster.admin_kubeconfig(0))?;
//! cluster.servers[0].stop().await; // the others keep serving the same objects
//! cluster.servers[1].set_ready(false); // /readyz fails
//! cluster.servers[2].set_latency(std::time::Duration::from_millis(200));
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`store`]: the shared state — objects, the global resource version, the bounded change history,
//!   paged lists, logs, tokens and RBAC rules.
//! - [`server`]: one instance — listener, TLS, client-certificate identity, stop/restart, knobs.
//! - [`cluster`]: N instances over one state with a CA; kubeconfigs.
//! - [`certs`]: CA, server and client certificates (rcgen); kubeconfig text.
//! - `handlers`: routing, discovery, authentication, impersonation, authorization, REST verbs.
//! - `watch`, `logs`, `exec` + `shell`: the streaming endpoints.
//! - [`patch`], [`selector`], [`table`], `openapi`: formats the apiserver speaks.
//! - [`auth`]: identities, RBAC rules, impersonation.
//! - [`resources`]: the served resource types.

pub mod auth;
pub mod certs;
pub mod cluster;
mod exec;
mod handlers;
mod logs;
mod openapi;
pub mod patch;
pub mod resources;
pub mod selector;
pub mod server;
mod shell;
pub mod status;
pub mod store;
pub mod table;
mod watch;

pub use auth::{PolicyRule, Rbac, UserInfo};
pub use certs::{CertificateAuthority, CertifiedKey, Credential};
pub use cluster::{FakeCluster, FakeClusterOptions};
pub use server::{FakeApiServer, InstanceConfig, TlsSettings};
pub use status::ApiError;
pub use store::{SharedState, StateConfig};
