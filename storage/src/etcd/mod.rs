//! The Store on an external etcd cluster.
