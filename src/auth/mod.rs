//! Users and login sessions, kept in the store so that any replica can serve any user.
//!
//! # Layout
//!
//! - [`password`]: argon2id hashing and verification (CPU-heavy: call from `spawn_blocking`).
//! - [`users`]: user records under `users/<name>` and the first-start `admin` user.
//! - [`sessions`]: random session tokens, stored only as their SHA-256 under `sessions/<hash>`.
//! - [`access_keys`]: long-lived keys for API clients under `access_keys/<id>` (secret hashed).
//! - [`password_policy`]: what a new password must satisfy.
//! - [`roles`]: global roles, role bindings and the Kubernetes identity they give
//!   ([`roles::kubernetes_identity`]); [`role_bindings`]: bindings under `role_bindings/<id>`.
//! - [`throttle`]: failed-login counters under `throttle/…`, each on a lease of the window.
//!
//! Architecture Invariant: no session or user state lives in process memory; every request reads
//! the store.

pub mod access_keys;
pub mod password;
pub mod password_policy;
pub mod role_bindings;
pub mod roles;
pub mod sessions;
pub mod throttle;
pub mod users;
