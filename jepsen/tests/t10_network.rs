//! The test network really isolates and heals: a TCP echo server in one namespace, probed from another
//! namespace and from the root namespace, before, during and after a partition; nothing left after.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kuboard_jepsen::net::{partition, Network};

const JEPSEN_BINARY: &str = env!("CARGO_BIN_EXE_kuboard-jepsen");

/// Kills the echo server by pid when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn probe_from(network: &Network, host: usize, target: SocketAddr) -> bool {
    network
        .command(host, JEPSEN_BINARY)
        .args(["echo-probe", "--target", &target.to_string(), "--timeout-ms", "500"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the echo probe")
        .success()
}

/// Wait until the probe from `host` answers `reachable` (a server needs a moment to bind).
fn wait_reachability(network: &Network, host: usize, target: SocketAddr, reachable: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe_from(network, host, target) != reachable {
        assert!(
            Instant::now() < deadline,
            "{target} from {} still {} after 10 s",
            network.hosts()[host].name,
            if reachable { "unreachable" } else { "reachable" }
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names_with(prefix: &str) -> Vec<String> {
    let namespaces = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("list namespaces");
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("list links");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&namespaces.stdout),
        String::from_utf8_lossy(&links.stdout)
    );
    text.split(|c: char| c.is_whitespace() || c == '@' || c == ':')
        .filter(|word| word.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_partition_cuts_two_namespaces_apart_and_healing_joins_them_again() {
    let mut network = Network::create(2).expect("create two hosts (the suite needs root, iproute2, iptables)");
    let id = network.id().to_string();
    let server_ip = network.hosts()[0].ip;
    let target = SocketAddr::from((server_ip, 7007));
    let server = Server(
        network
            .command(0, JEPSEN_BINARY)
            .args(["echo-server", "--listen", &target.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the echo server in n1"),
    );

    // Phase 1: connected — from n2 and from the root namespace through the bridge.
    wait_reachability(&network, 1, target, true);
    kuboard_jepsen::echo::probe(target, Duration::from_secs(1)).expect("the root namespace reaches n1");

    // Phase 2: n1 isolated from n2; the suite's own clients (root namespace) still reach it.
    network.partition(&partition::isolate(2, 0)).expect("partition");
    wait_reachability(&network, 1, target, false);
    kuboard_jepsen::echo::probe(target, Duration::from_secs(1)).expect("clients still reach a partitioned host");

    // Phase 3: healed.
    network.heal().expect("heal");
    wait_reachability(&network, 1, target, true);

    // Phase 4: total loss between hosts cuts them apart too; healing removes it.
    network.lose_packets(1.0).expect("lose every packet");
    wait_reachability(&network, 1, target, false);
    network.heal().expect("heal");
    wait_reachability(&network, 1, target, true);

    // Phase 5: nothing remains once the server is gone and the network dropped.
    drop(server);
    drop(network);
    let left = names_with(&format!("kjp-{id}"))
        .into_iter()
        .chain(names_with(&format!("kjp{id}")))
        .collect::<Vec<_>>();
    assert!(left.is_empty(), "left behind: {left:?}");
    let forward = Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .expect("list FORWARD");
    assert!(
        !String::from_utf8_lossy(&forward.stdout).contains(&format!("kjp-{id}")),
        "host FORWARD rule left behind"
    );
}

#[test]
fn host_counts_outside_1_to_50_are_refused() {
    assert!(Network::create(0).is_err());
    assert!(Network::create(51).is_err());
}

/// The time of one echo round trip from `host`, or `None` when the probe failed.
fn round_trip_from(network: &Network, host: usize, target: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    probe_from(network, host, target).then(|| started.elapsed())
}

#[test]
fn delay_proxies_add_their_delay_and_partitions_still_cut_the_proxied_links() {
    use kuboard_jepsen::net::{DelayControl, ProxySet, Route};
    use std::sync::Arc;

    let mut network = Network::create(2).expect("create two hosts (the suite needs root, iproute2, iptables)");
    network.add_peer_aliases(2).expect("add the alias addresses");
    let real = SocketAddr::from((network.hosts()[0].ip, 7009));
    let alias = SocketAddr::from((network.peer_alias(0), 7009));
    let _server = Server(
        network
            .command(0, JEPSEN_BINARY)
            .args(["echo-server", "--listen", &real.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the echo server in n1"),
    );
    let control = Arc::new(DelayControl::default());
    let proxies = ProxySet::start(
        &[Route {
            namespace: network.hosts()[1].namespace.clone(),
            listen: alias,
            target: real,
        }],
        Arc::clone(&control),
    )
    .expect("start the proxy in n2");

    // n2 reaches n1 through its local proxy at n1's alias.
    wait_reachability(&network, 1, alias, true);
    let direct = round_trip_from(&network, 1, alias).expect("a probe through the proxy");

    // 150 ms each way: the probe's 500 ms budget still holds one round trip of about 300 ms.
    control.set(Duration::from_millis(150), Duration::ZERO);
    let delayed = round_trip_from(&network, 1, alias).expect("a delayed probe");
    eprintln!(
        "echo round trip through the proxy: {} ms, with 150 ms delay each way: {} ms",
        direct.as_millis(),
        delayed.as_millis()
    );
    assert!(
        delayed >= direct + Duration::from_millis(280),
        "{direct:?} → {delayed:?}"
    );
    control.clear();

    // A partition between n1 and n2 cuts the proxied link too: the proxy dials from n2's address.
    network.partition(&partition::isolate(2, 0)).expect("partition");
    wait_reachability(&network, 1, alias, false);
    network.heal().expect("heal");
    wait_reachability(&network, 1, alias, true);
    drop(proxies);
}
