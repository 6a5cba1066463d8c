//! Kubernetes access: imported clusters reached through an embedded per-cluster apiserver balancer,
//! a streaming proxy that impersonates the Kuboard user, and per-user kubeconfigs pointing at it.
//!
//! # Layout
//!
//! - [`apiserver_url`]: one apiserver address as imported (`https://host:port[/prefix]`).
//! - [`cluster_connection`]: [`cluster_connection::ClusterConnection`], what the balancer needs to reach a cluster
//!   (endpoints, CA, credential), built from a registry record; the rustls client configuration.
//! - [`kubeconfig_import`]: kubeconfig / token import parsing and validation, and the reachability
//!   probe of every imported URL.
//! - [`endpoint_state`]: the pure state machine of the balancer (states, preference, hysteresis).
//! - [`endpoint_connector`]: TCP + TLS connections to one endpoint, each of which can be closed
//!   from outside (the failover closes every connection to a failed server).
//! - [`apiserver_pool`]: [`apiserver_pool::ApiserverPool`], one per cluster: a pooled client per endpoint, active
//!   health checks on `/readyz`, try order, failover, per-endpoint status and metrics.
//! - [`apiserver_pool_registry`]: [`apiserver_pool_registry::ApiserverPoolRegistry`], every pool of
//!   this replica (one per cluster), built lazily from the cluster registry and rebuilt when a
//!   cluster record changes.
//! - [`kube_metrics`]: the `kuboard_apiserver_*` Prometheus metrics.
//! - [`kube_status`]: Kubernetes-style `Status` error responses.
//! - [`proxy`]: `/k8s-api/{cluster}/{*path}`, streaming, websocket upgrades, impersonation.
//! - [`user_kubeconfig`]: the kubeconfig a user downloads to use kubectl through the proxy.
//! - [`agent_manifest`]: the manifest that runs the agent in an agent cluster (`kubectl apply -f`).
//! - [`cluster_routes`]: the cluster registry over HTTP, and [`cluster_routes::store_new_cluster`],
//!   the one place a cluster is created (field by field or imported).
//! - [`kube_routes`]: the HTTP routes (registry, import, endpoint states, kubeconfig download,
//!   proxy) and their OpenAPI paths.
//!
//! Architecture Invariant: the proxy never forwards the caller's own credentials or
//! impersonation headers; the apiserver sees only the cluster's credential and the identity
//! computed by `auth::roles::kubernetes_identity`.
//!
//! Architecture Invariant: the pools are a cache of the registry. Nothing in them is needed by
//! another replica; each replica health-checks and balances on its own.

pub mod agent_manifest;
pub mod apiserver_pool;
pub mod apiserver_pool_registry;
pub mod apiserver_url;
pub mod cluster_connection;
pub mod cluster_routes;
pub mod endpoint_connector;
pub mod endpoint_state;
pub mod kube_metrics;
pub mod kube_routes;
pub mod kube_status;
pub mod kubeconfig_import;
pub mod proxy;
pub mod user_kubeconfig;
