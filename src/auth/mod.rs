//! Users and login sessions, kept in the store so that any replica can serve any user.
//!
//! # Layout
//!
//! - [`password`]: argon2id hashing and verification (CPU-heavy: call from `spawn_blocking`).
//! - [`users`]: user records under `users/<name>` and the first-start `admin` user.
//! - [`sessions`]: random session tokens, stored only as their SHA-256 under `sessions/<hash>`.
//!
//! Architecture Invariant: no session or user state lives in process memory; every request reads
//! the store.

pub mod password;
pub mod sessions;
pub mod users;
