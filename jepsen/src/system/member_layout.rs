//! How the members of a system under test are laid out on the test network: their addresses, their
//! command lines and settings, before any of them is started.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Child;

use super::cluster::{ClusterOptions, CLIENT_PORT, PEER_PORT, WEB_PORT};
use crate::net::{Network, Route};

/// One member of the system: what starts it and, once started, its process.
pub(super) struct Member {
    pub(super) name: String,
    /// Wiped when the member is removed from the group, so that it joins again as a fresh member.
    pub(super) data_dir: PathBuf,
    /// Removed from the group by [`Cluster::remove_member`] and not added back yet.
    pub(super) removed: bool,
    pub(super) program: PathBuf,
    pub(super) args: Vec<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) log_path: PathBuf,
    pub(super) process: Option<Child>,
    pub(super) paused: bool,
}

/// In every member's namespace, a proxy for each member's alias address that forwards to its real
/// peer address.
pub(super) fn peer_routes(network: &Network, members: usize) -> Vec<Route> {
    let hosts = network.hosts();
    let mut routes = Vec::new();
    for host in &hosts[..members] {
        for (target_index, target) in hosts[..members].iter().enumerate() {
            routes.push(Route {
                namespace: host.namespace.clone(),
                listen: SocketAddr::from((network.peer_alias(target_index), PEER_PORT)),
                target: SocketAddr::from((target.ip, PEER_PORT)),
            });
        }
    }
    routes
}

/// The address members use for member `index`'s peer port.
pub(super) fn peer_ip(network: &Network, index: usize, proxied: bool) -> Ipv4Addr {
    if proxied {
        network.peer_alias(index)
    } else {
        network.hosts()[index].ip
    }
}

pub(super) fn embedded_members(network: &Network, options: &ClusterOptions, proxied: bool) -> Vec<Member> {
    let hosts = &network.hosts()[..options.members];
    let peers = (0..hosts.len())
        .map(|index| format!("{}={}:{PEER_PORT}", index + 1, peer_ip(network, index, proxied)))
        .collect::<Vec<_>>()
        .join(",");
    // The secrets only have to be shared by the members of this run.
    let secret = format!("kuboard-jepsen-{}-{:016x}", network.id(), rand::random::<u64>());
    let sso_secret = format!("kuboard-jepsen-sso-{:016x}", rand::random::<u64>());
    hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let ip = host.ip.to_string();
            let env = [
                ("KUBOARD_SERVER_ADDR", ip.clone()),
                ("KUBOARD_SERVER_PORT", WEB_PORT.to_string()),
                ("KUBOARD_RAFT_ADDR", ip.clone()),
                ("KUBOARD_RAFT_PORT", PEER_PORT.to_string()),
                ("KUBOARD_RAFT_NODE_ID", (index + 1).to_string()),
                ("KUBOARD_RAFT_PEERS", peers.clone()),
                ("KUBOARD_CLUSTER_SECRET", secret.clone()),
                ("KUBOARD_SSO_CLIENT_SECRET", sso_secret.clone()),
                (
                    "KUBOARD_DATA_DIR",
                    options.work_dir.join(&host.name).display().to_string(),
                ),
                ("KUBOARD_ETCD_API_ADDR", ip.clone()),
                ("KUBOARD_ETCD_API_PORT", CLIENT_PORT.to_string()),
                // The members' addresses exist only in the run's own network namespaces.
                ("KUBOARD_ETCD_API_INSECURE_BIND", "true".to_string()),
                ("KUBOARD_SERVER_LOGRUS_LEVEL", "info".to_string()),
            ];
            Member {
                name: host.name.clone(),
                data_dir: options.work_dir.join(&host.name),
                removed: false,
                program: options.kuboard_binary.clone(),
                args: vec!["serve".to_string()],
                env: env
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.clone()))
                    .collect(),
                log_path: options.work_dir.join(format!("{}.log", host.name)),
                process: None,
                paused: false,
            }
        })
        .collect()
}

pub(super) fn etcd_members(network: &Network, options: &ClusterOptions, proxied: bool) -> Vec<Member> {
    let hosts = &network.hosts()[..options.members];
    let initial_cluster = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| format!("{}=http://{}:{PEER_PORT}", host.name, peer_ip(network, index, proxied)))
        .collect::<Vec<_>>()
        .join(",");
    hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let client_url = format!("http://{}:{CLIENT_PORT}", host.ip);
            // It listens on its own address; the others reach it at the advertised one (the alias
            // served by their delay proxies, when there are proxies).
            let peer_url = format!("http://{}:{PEER_PORT}", host.ip);
            let advertised_peer_url = format!("http://{}:{PEER_PORT}", peer_ip(network, index, proxied));
            let args = vec![
                format!("--name={}", host.name),
                format!("--data-dir={}", options.work_dir.join(&host.name).display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={advertised_peer_url}"),
                format!("--initial-cluster={initial_cluster}"),
                format!("--initial-cluster-token=kuboard-jepsen-{}", network.id()),
                "--initial-cluster-state=new".to_string(),
                "--logger=zap".to_string(),
                "--log-outputs=stderr".to_string(),
            ];
            Member {
                name: host.name.clone(),
                data_dir: options.work_dir.join(&host.name),
                removed: false,
                program: options.etcd_binary.clone(),
                args,
                env: Vec::new(),
                log_path: options.work_dir.join(format!("{}.log", host.name)),
                process: None,
                paused: false,
            }
        })
        .collect()
}
