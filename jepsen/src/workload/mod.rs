//! Workloads: concurrent clients that record what they did and saw.
//!
//! - [`register`]: read / write / compare-and-set on registers through the etcd v3 API.

pub mod register;
