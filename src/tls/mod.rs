//! HTTPS out of the box: a second web listener beside `KUBOARD_SERVER_PORT`, on
//! `KUBOARD_SERVER_HTTPS_PORT` (default 443), so that kubectl, which sends a bearer token only over
//! TLS, can use a downloaded kubeconfig even where the console is served over plain HTTP.
//!
//! # Layout
//!
//! - [`group_ca`]: the CA all replicas share, made once and kept in the store (its key sealed like
//!   cluster credentials), and the serving certificates it issues.
//! - [`https_port`]: the listener, its serving certificate (the operator's `KUBOARD_TLS_CERT` when
//!   given, else one from the group CA with this replica's names) and [`https_port::HttpsStatus`],
//!   which the kubeconfig download reads to name a working address.

pub mod group_ca;
pub mod https_port;
