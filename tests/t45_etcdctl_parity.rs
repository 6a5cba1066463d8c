//! `etcdctl` 3.4 against a three-member embedded group served by `kuboard serve`
//! (`KUBOARD_ETCD_API_PORT`), compared with a real three-member etcd 3.4: one script of commands
//! runs on both through all three endpoints, the outputs are normalised (ids, revisions relative
//! to the script's start, timings, URLs) and compared line by line; the reads also run against
//! every single replica. (`etcdctl check perf` against the group is t46, run on its own.)

mod common;
mod etcdctl_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::free_port;
use kuboard_storage::testing::EtcdCluster;

use etcdctl_support::*;

/// The tests of this file start whole groups; they run one at a time on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TXN_SUCCESS: &str = "value(\"/parity/a\") = \"1\"\n\nput /parity/b 2\nput /parity/c 3\n\nput /parity/d 4\n\n";
const TXN_FAILURE: &str = "value(\"/parity/a\") = \"9\"\n\nput /parity/b 9\n\nput /parity/d 4\n\n";
const TXN_JSON: &str = "mod(\"/parity/a\") > \"0\"\n\nget /parity/a\ndel /parity/c\n\n\n";

/// The script. Write number N makes revision `{rev:N}` (relative to the store's revision before
/// the script, as kuboard's own keys were written before).
const SCRIPT: &[Step] = &[
    Step::Run(&["put", "/parity/foo", "bar"]),     // 1
    Step::Run(&["put", "/parity/foo2", "bar2"]),   // 2
    Step::Run(&["put", "/parity/foo3", "bar3"]),   // 3
    Step::Run(&["put", "/parity/foo", "bar-new"]), // 4
    Step::Read(&["get", "/parity/foo"]),
    Step::Read(&["get", "/parity/foo", "-w", "json"]),
    Step::Read(&["get", "/parity/", "--prefix"]),
    Step::Read(&["get", "/parity/", "--prefix", "--limit", "2"]),
    Step::Read(&["get", "/parity/", "--prefix", "--limit", "2", "-w", "json"]),
    Step::Read(&[
        "get",
        "/parity/",
        "--prefix",
        "--keys-only",
        "--sort-by=MODIFY",
        "--order=DESCEND",
    ]),
    Step::Read(&["get", "/parity/", "--prefix", "--count-only", "-w", "json"]),
    Step::Read(&["get", "/parity/foo", "--rev={rev:1}"]),
    Step::Read(&["get", "/parity/", "--prefix", "--rev={rev:2}", "-w", "json"]),
    Step::Read(&["get", "/parity/foo", "--rev={rev:1000}"]),
    Step::Run(&["del", "/parity/foo2"]), // 5
    Step::Run(&["del", "/parity/nothing"]),
    Step::Run(&["del", "/parity/foo3", "--prev-kv"]), // 6
    Step::Run(&["put", "/parity/a", "1"]),            // 7
    Step::Input(&["txn"], TXN_SUCCESS),               // 8
    Step::Input(&["txn"], TXN_FAILURE),               // 9
    Step::Input(&["txn", "-w", "json"], TXN_JSON),    // 10
    Step::Read(&["get", "/parity/", "--prefix", "-w", "json"]),
    // Every event from the first write: 4 puts, 2 deletes, 1 put, txn's 2 puts, 1 put, 1 delete,
    // three lines each (type, key, value).
    Step::Stream(&["watch", "/parity/", "--prefix", "--rev={rev:1}"], 11 * 3),
    Step::Stream(&["watch", "/parity/a", "--rev={rev:7}", "--prev-kv", "-w", "json"], 1),
    Step::Grant("long", &["lease", "grant", "100"]),
    Step::Run(&["put", "--lease={lease:long}", "/parity/leased", "v"]), // 11
    Step::Run(&["lease", "timetolive", "{lease:long}", "--keys"]),
    Step::Run(&["lease", "keep-alive", "--once", "{lease:long}"]),
    Step::Run(&["lease", "list"]),
    Step::Run(&["lease", "revoke", "{lease:long}"]), // 12
    Step::Read(&["get", "/parity/leased"]),
    Step::Grant("short", &["lease", "grant", "3"]),
    Step::Run(&["put", "--lease={lease:short}", "/parity/expiring", "soon"]), // 13
    Step::Read(&["get", "/parity/expiring"]),
    Step::UntilEmpty(&["get", "/parity/expiring"]), // 14: the expiry deletes the key
    Step::Run(&["lease", "timetolive", "{lease:short}"]),
    Step::Grant("kept", &["lease", "grant", "6"]),
    // keep-alive sends a renewal every TTL/3 and prints each answer.
    Step::Stream(&["lease", "keep-alive", "{lease:kept}"], 2),
    Step::Run(&["lease", "revoke", "{lease:kept}"]),
    Step::Run(&["lease", "list"]),
    Step::Run(&["lease", "timetolive", "1234"]),
    Step::Run(&["put", "--lease=1234", "/parity/k", "v"]),
    Step::Read(&["get", "/parity/", "--prefix", "-w", "json"]),
    Step::Cluster(&["member", "list"]),
    Step::Cluster(&["endpoint", "status"]),
    Step::Cluster(&["endpoint", "health"]),
];

/// One store under test, as the script sees it.
struct Side {
    name: &'static str,
    /// All members' endpoints at once.
    all: Etcdctl,
    /// Each member alone (only for the embedded group).
    each: Vec<Etcdctl>,
    /// The store's revision before the script's first write.
    base_revision: i64,
}

/// What varies between two equal stores: ids, revision numbers (made relative), timings, URLs.
struct Normaliser {
    base_revision: i64,
    /// Lease ids granted by the script: (name, hex as etcdctl prints and takes it).
    leases: Vec<(&'static str, String)>,
    endpoints: Vec<String>,
}

impl Normaliser {
    fn lease_decimal(hex: &str) -> String {
        i64::from_str_radix(hex, 16).expect("a hex lease id").to_string()
    }

    fn text(&self, text: &str) -> String {
        let mut out = String::new();
        for line in self.script_leases_only(text) {
            out.push_str(&self.line(&line));
            out.push('\n');
        }
        out
    }

    /// `lease list` shows every lease of the store, and kuboard keeps its own (the elections of its
    /// background jobs, campaigned for by every replica at any time): only the script's leases
    /// are kept, and the count says how many of those there are.
    fn script_leases_only(&self, text: &str) -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let is_lease_list = lines
            .first()
            .is_some_and(|first| first.starts_with("found ") && first.ends_with(" leases"));
        if !is_lease_list {
            return lines.into_iter().map(str::to_string).collect();
        }
        let ours: Vec<String> = lines[1..]
            .iter()
            .filter(|id| self.leases.iter().any(|(_, hex)| hex == *id))
            .map(|id| id.to_string())
            .collect();
        std::iter::once(format!("found {} leases", ours.len()))
            .chain(ours)
            .collect()
    }

    fn line(&self, line: &str) -> String {
        if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(line) {
            if value.is_object() || value.is_array() {
                self.json(&mut value, None);
                return value.to_string();
            }
        }
        let mut line = line.to_string();
        for (name, hex) in &self.leases {
            line = line.replace(hex.as_str(), &format!("<lease:{name}>"));
        }
        for endpoint in &self.endpoints {
            line = line.replace(endpoint.as_str(), "<endpoint>");
        }
        if let Some(at) = line.find(" took = ") {
            line = format!("{}<took>", &line[..at + 8]);
        }
        // `lease timetolive`: the remaining seconds depend on when the command ran.
        if let Some(start) = line.find("remaining(") {
            if let Some(end) = line[start..].find("s)") {
                line = format!("{}remaining(<n>s){}", &line[..start], &line[start + end + 2..]);
            }
        }
        line
    }

    fn json(&self, value: &mut serde_json::Value, key: Option<&str>) {
        match value {
            serde_json::Value::Object(map) => {
                for (field_key, field) in map.iter_mut() {
                    self.json(field, Some(field_key.as_str()));
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|item| self.json(item, key)),
            // Ids are u64 and may not fit an i64.
            serde_json::Value::Number(_) if matches!(key, Some("cluster_id" | "member_id" | "raft_term" | "ID")) => {
                *value = "<id>".into();
            }
            serde_json::Value::Number(number) => {
                let Some(number) = number.as_i64() else { return };
                match key {
                    Some("lease" | "id") => {
                        let name = self
                            .leases
                            .iter()
                            .find(|(_, hex)| Self::lease_decimal(hex) == number.to_string())
                            .map_or("<unknown lease>".to_string(), |(name, _)| format!("<lease:{name}>"));
                        *value = name.into();
                    }
                    Some("revision" | "create_revision" | "mod_revision" | "compact_revision") if number > 0 => {
                        *value = format!("<rev:{}>", number - self.base_revision).into();
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Lines of cluster-wide tables, with per-member fields replaced, sorted.
    fn cluster(&self, args: &[&str], printed: &Printed) -> String {
        let text = format!("{}{}", printed.stdout, printed.stderr);
        let mut lines: Vec<String> = text
            .lines()
            .map(|line| {
                let mut fields: Vec<String> = line.split(", ").map(str::to_string).collect();
                match args {
                    ["member", "list"] if fields.len() == 6 => {
                        // id, status, name, peer URLs, client URLs, is learner.
                        fields[0] = "<member id>".into();
                        fields[2] = "<name>".into();
                        fields[3] = "<peer url>".into();
                        fields[4] = "<client url>".into();
                    }
                    ["endpoint", "status"] if fields.len() >= 9 => {
                        // endpoint, id, version, db size, is leader, is learner, term, index, applied.
                        fields[0] = "<endpoint>".into();
                        fields[1] = "<member id>".into();
                        fields[2] = if fields[2].starts_with("3.4.") {
                            "3.4.x".into()
                        } else {
                            format!("<not 3.4: {}>", fields[2])
                        };
                        fields[3] = "<db size>".into();
                        for field in &mut fields[6..9] {
                            *field = "<number>".into();
                        }
                    }
                    _ => {}
                }
                self.line(&fields.join(", "))
            })
            .collect();
        lines.sort();
        lines.into_iter().map(|line| format!("{line}\n")).collect()
    }
}

/// The arguments with `{rev:N}` and `{lease:NAME}` filled in for one side.
fn fill(args: &[&str], base_revision: i64, leases: &[(&'static str, String)]) -> Vec<String> {
    args.iter()
        .map(|arg| {
            let mut arg = arg.to_string();
            while let Some(start) = arg.find("{rev:") {
                let end = start + arg[start..].find('}').expect("closing brace");
                let relative: i64 = arg[start + 5..end].parse().expect("a relative revision");
                arg = format!("{}{}{}", &arg[..start], base_revision + relative, &arg[end + 1..]);
            }
            for (name, hex) in leases {
                arg = arg.replace(&format!("{{lease:{name}}}"), hex);
            }
            arg
        })
        .collect()
}

fn outcome(normaliser: &Normaliser, printed: &Printed) -> String {
    format!(
        "{}{}exit {}",
        normaliser.text(&printed.stdout),
        normaliser.text(&printed.stderr),
        if printed.success { "ok" } else { "failed" }
    )
}

/// The script's transcript on one side: (command, normalised output) per step, and the steps where
/// a single member printed something else than all members together.
async fn run_script(side: &Side) -> (Vec<(String, String)>, Vec<String>) {
    let mut normaliser = Normaliser {
        base_revision: side.base_revision,
        leases: Vec::new(),
        endpoints: side.all.endpoints.clone(),
    };
    let mut transcript = Vec::new();
    let mut member_differences = Vec::new();
    for step in SCRIPT {
        let (args, input): (&[&str], &str) = match step {
            Step::Run(args)
            | Step::Read(args)
            | Step::Stream(args, _)
            | Step::Grant(_, args)
            | Step::UntilEmpty(args)
            | Step::Cluster(args) => (args, ""),
            Step::Input(args, input) => (args, input),
        };
        let filled = fill(args, side.base_revision, &normaliser.leases);
        let filled: Vec<&str> = filled.iter().map(String::as_str).collect();
        let label = if input.is_empty() {
            args.join(" ")
        } else {
            format!("{} <<< {input:?}", args.join(" "))
        };
        tracing::info!(side = side.name, "etcdctl {}", filled.join(" "));
        let printed = match step {
            Step::Stream(_, lines) => stream_printed(side.all.stream(&filled, *lines).await),
            Step::UntilEmpty(_) => until_empty(&side.all, &filled).await,
            _ => side.all.run_with_input(&filled, input, COMMAND_DEADLINE).await,
        };
        if let Step::Grant(name, _) = step {
            normaliser.leases.push((name, granted_lease(&printed)));
        }
        let normalised = match step {
            Step::Cluster(_) => format!(
                "{}exit {}",
                normaliser.cluster(args, &printed),
                if printed.success { "ok" } else { "failed" }
            ),
            _ => outcome(&normaliser, &printed),
        };
        for (index, member) in side.each.iter().enumerate() {
            let alone = match step {
                Step::Read(_) => member.run(&filled).await,
                Step::Stream(_, lines) => stream_printed(member.stream(&filled, *lines).await),
                _ => continue,
            };
            let alone = outcome(&normaliser, &alone);
            if alone != normalised {
                member_differences.push(format!(
                    "etcdctl {label}\n--- all members:\n{normalised}\n--- member {} alone:\n{alone}\n",
                    index + 1
                ));
            }
        }
        transcript.push((label, normalised));
    }
    (transcript, member_differences)
}

fn stream_printed(lines: Vec<String>) -> Printed {
    Printed {
        stdout: lines.iter().map(|line| format!("{line}\n")).collect(),
        stderr: String::new(),
        success: true,
    }
}

/// Runs `args` until it prints nothing on stdout (bounded), returning that last run.
async fn until_empty(etcdctl: &Etcdctl, args: &[&str]) -> Printed {
    let deadline = Instant::now() + COMMAND_DEADLINE;
    loop {
        let printed = etcdctl.run(args).await;
        if printed.success && printed.stdout.is_empty() {
            return printed;
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?} still printed {printed:?} after {COMMAND_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The lease id (hex) in etcdctl's "lease <hex> granted with TTL(..)".
fn granted_lease(printed: &Printed) -> String {
    let words: Vec<&str> = printed.stdout.split_whitespace().collect();
    assert!(
        printed.success && words.len() >= 3 && words[0] == "lease" && words[2] == "granted",
        "lease grant failed: {printed:?}"
    );
    words[1].to_string()
}

/// The store's current revision, by a linearizable read through `etcdctl`.
async fn current_revision(etcdctl: &Etcdctl) -> i64 {
    let printed = etcdctl.run(&["get", "/parity/", "--prefix", "-w", "json"]).await;
    assert!(printed.success, "{printed:?}");
    let value: serde_json::Value = serde_json::from_str(&printed.stdout).expect("etcdctl prints JSON");
    value["header"]["revision"].as_i64().expect("a revision in the header")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_prints_the_same_on_three_member_etcd_and_three_replicas() {
    let _serial = SERIAL.lock().await;
    init_tracing();

    tracing::info!("--- a real three-member etcd 3.4 and three kuboard replicas serving the etcd API");
    let etcd = EtcdCluster::start(3).await.expect("start a real three-member etcd");
    let embedded = EmbeddedGroup::start().await;

    let etcd_side = {
        let all = Etcdctl::new(
            etcd.client_endpoints()
                .iter()
                .map(|url| url.trim_start_matches("http://").to_string())
                .collect(),
        );
        let base_revision = current_revision(&all).await;
        Side {
            name: "etcd",
            all,
            each: Vec::new(),
            base_revision,
        }
    };
    let kuboard_side = {
        let all = embedded.etcdctl();
        let base_revision = current_revision(&all).await;
        Side {
            name: "kuboard",
            all,
            each: embedded
                .endpoints()
                .into_iter()
                .map(|endpoint| Etcdctl::new(vec![endpoint]))
                .collect(),
            base_revision,
        }
    };

    tracing::info!(
        "--- the script against etcd (base revision {})",
        etcd_side.base_revision
    );
    let (etcd_transcript, _) = run_script(&etcd_side).await;
    tracing::info!(
        "--- the script against the three replicas (base revision {}), reads on each replica too",
        kuboard_side.base_revision
    );
    let (kuboard_transcript, member_differences) = run_script(&kuboard_side).await;

    tracing::info!("--- the comparison, step by step");
    let mut report = String::new();
    let mut differences = 0;
    for ((label, etcd_output), (_, kuboard_output)) in etcd_transcript.iter().zip(&kuboard_transcript) {
        report.push_str(&format!("$ etcdctl {label}\n"));
        if etcd_output == kuboard_output {
            report.push_str(&indent(etcd_output, "  same | "));
        } else {
            differences += 1;
            report.push_str(&indent(etcd_output, "  etcd | "));
            report.push_str(&indent(kuboard_output, "  ours | "));
        }
    }
    println!("{report}");
    assert_eq!(etcd_transcript.len(), SCRIPT.len());
    assert_eq!(kuboard_transcript.len(), SCRIPT.len());
    assert_eq!(
        differences,
        0,
        "{differences} of {} steps differ between etcd and kuboard:\n{report}",
        SCRIPT.len()
    );
    assert!(
        member_differences.is_empty(),
        "a single replica answered differently from the group:\n{}",
        member_differences.join("\n")
    );

    tracing::info!(
        "--- member list: ids are Raft ids, URLs are each member's peer host with the asking replica's API port"
    );
    for (index, port) in embedded.api_ports.iter().enumerate() {
        let printed = Etcdctl::new(vec![format!("127.0.0.1:{port}")])
            .run(&["member", "list"])
            .await;
        let expected: String = embedded
            .group
            .replicas
            .iter()
            .enumerate()
            .map(|(member, replica)| {
                format!(
                    "{}, started, kuboard-{}, http://127.0.0.1:{}, http://127.0.0.1:{port}, false\n",
                    member + 1,
                    member + 1,
                    replica.raft_port
                )
            })
            .collect();
        assert_eq!(printed.stdout, expected, "member list asked of replica {}", index + 1);
    }

    tracing::info!("--- endpoint status with an http:// endpoint, as etcd takes it");
    // etcdctl 3.4 dials `passthrough:///http://host:port` for `endpoint status` and sends
    // `http://host:port` as HTTP/2 `:authority`; etcd's Go server takes it, and so must we.
    let endpoint = format!("http://127.0.0.1:{}", embedded.api_ports[0]);
    let with_scheme = Etcdctl::new(vec![endpoint.clone()]);
    let printed = with_scheme.run(&["endpoint", "status"]).await;
    assert!(
        printed.success && printed.stdout.starts_with(&format!("{endpoint}, ")),
        "endpoint status through an http:// endpoint: {printed:?}"
    );
    let printed = with_scheme.run(&["endpoint", "status", "-w", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(&printed.stdout).expect("endpoint status as JSON");
    assert_eq!(status[0]["Endpoint"], endpoint.as_str(), "{status}");
    assert!(status[0]["Status"]["header"]["revision"].as_i64() > Some(0), "{status}");
    let printed = with_scheme.run(&["get", "/parity/a", "--print-value-only"]).await;
    assert_eq!(
        printed.stdout, "1\n",
        "other commands take http:// endpoints: {printed:?}"
    );
    embedded.stop();
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|line| format!("{prefix}{line}\n")).collect()
}

/// Settings of the etcd API that cannot work stop `kuboard serve` at start with one line naming
/// the setting (exit 2), a taken port with one naming the address (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_etcd_api_settings_stop_the_start() {
    init_tracing();
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let server_port = free_port().to_string();
    let raft_port = free_port().to_string();
    let base = [
        ("KUBOARD_SERVER_ADDR", "127.0.0.1"),
        ("KUBOARD_SERVER_PORT", server_port.as_str()),
        ("KUBOARD_RAFT_PORT", raft_port.as_str()),
        ("KUBOARD_DATA_DIR", data_dir.as_str()),
    ];
    let run = |extra: &[(&str, &str)]| {
        let mut env = base.to_vec();
        env.extend_from_slice(extra);
        common::run_to_completion(&["serve"], &env, Duration::from_secs(20))
    };

    tracing::info!("--- with an external etcd the API is a configuration error");
    let finished = run(&[
        ("KUBOARD_ETCD_ENDPOINTS", "127.0.0.1:2379"),
        ("KUBOARD_ETCD_API_PORT", "2379"),
    ]);
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
    assert_eq!(
        finished.stderr,
        "error: KUBOARD_ETCD_API_PORT=\"2379\": expected it unset when KUBOARD_ETCD_ENDPOINTS selects an external \
         etcd: only the embedded store serves the etcd v3 API; point etcd clients at the external etcd itself\n"
    );

    tracing::info!("--- a missing certificate file is named, the flag as the operator wrote it");
    let finished = common::run_to_completion(
        &[
            "serve",
            "--etcd-api-port",
            "23790",
            "--etcd-api-cert",
            "/nonexistent/api.pem",
            "--etcd-api-key",
            "/nonexistent/api-key.pem",
        ],
        &base,
        Duration::from_secs(20),
    );
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
    assert!(
        finished.stderr.starts_with(
            "error: --etcd-api-cert=\"/nonexistent/api.pem\": expected a PEM certificate file that can be read"
        ) && finished.stderr.lines().count() == 1,
        "{}",
        finished.stderr
    );

    tracing::info!("--- a taken port stops the start before anything is served");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = taken.local_addr().expect("local address").port().to_string();
    let finished = run(&[("KUBOARD_ETCD_API_PORT", port.as_str())]);
    assert_eq!(finished.status.code(), Some(1), "{}", finished.stderr);
    let line = finished
        .stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {}", finished.stderr));
    assert!(
        line.starts_with(&format!(
            "error: listen on 127.0.0.1:{port} (KUBOARD_ETCD_API_PORT, KUBOARD_ETCD_API_ADDR) for the etcd v3 API: "
        )),
        "{line}"
    );
}

/// TLS with client certificates through `kuboard serve`: served to a client with a certificate
/// signed by the CA, refused without one; the API closes with the replica's graceful shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuboard_serve_with_tls_client_certificates() {
    init_tracing();
    let files = tempfile::tempdir().expect("tempdir");
    let pki = common::make_test_pki(files.path());
    let path = |file: &Path| file.display().to_string();
    let api_port = free_port();
    let (cert, key, ca, port) = (
        path(&pki.server_cert),
        path(&pki.server_key),
        path(&pki.ca),
        api_port.to_string(),
    );
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut replica = common::Replica::start_with(
        &data.path().join("data"),
        logs.path(),
        &[
            ("KUBOARD_ETCD_API_PORT", port.as_str()),
            ("KUBOARD_ETCD_API_CERT", cert.as_str()),
            ("KUBOARD_ETCD_API_KEY", key.as_str()),
            ("KUBOARD_ETCD_API_CLIENT_CA", ca.as_str()),
        ],
    );
    replica.wait_ready_within(START_DEADLINE).await;

    tracing::info!("--- a client certificate signed by the CA: served");
    let endpoint = format!("https://127.0.0.1:{api_port}");
    let mut with_certificate = Etcdctl::new(vec![endpoint.clone()]);
    with_certificate.extra = vec![
        format!("--cacert={ca}"),
        format!("--cert={}", path(&pki.client_cert)),
        format!("--key={}", path(&pki.client_key)),
    ];
    let printed = with_certificate.run(&["put", "secure", "yes"]).await;
    assert_eq!(printed.stdout, "OK\n", "{printed:?}");
    let printed = with_certificate.run(&["endpoint", "status"]).await;
    assert!(
        printed.success && printed.stdout.starts_with(&format!("{endpoint}, ")),
        "endpoint status through an https:// endpoint: {printed:?}"
    );
    let printed = with_certificate.run(&["member", "list"]).await;
    assert_eq!(
        printed.stdout,
        format!(
            "1, started, kuboard-1, http://127.0.0.1:{}, https://127.0.0.1:{api_port}, false\n",
            replica.raft_port
        ),
        "{printed:?}"
    );

    tracing::info!("--- no client certificate: refused");
    let mut without_certificate = Etcdctl::new(vec![endpoint]);
    without_certificate.extra = vec![format!("--cacert={ca}"), "--dial-timeout=2s".to_string()];
    let printed = without_certificate.run(&["get", "secure"]).await;
    assert!(!printed.success && printed.stdout.is_empty(), "{printed:?}");

    tracing::info!("--- the graceful shutdown closes the API");
    replica.stop();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", api_port)).await.is_err(),
        "the etcd API port is closed after the replica stopped"
    );
}
