//! What the audit tests share: a PostgreSQL server of their own (QuestDB cannot be installed on
//! these machines; PostgreSQL speaks the same wire protocol) and a wait with a deadline.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;

pub const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL server of its own: data and socket dirs in a temp dir, a loopback port, run as
/// the `postgres` user (PostgreSQL refuses root), stopped by pid.
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    uid: u32,
    gid: u32,
    child: Option<Child>,
}

impl Postgres {
    pub fn init(parent: &Path) -> Postgres {
        let postgres = Path::new(POSTGRES_BIN).join("postgres");
        assert!(
            postgres.exists(),
            "{} is missing: install the Debian package postgresql (scripts/install-deps.sh test)",
            postgres.display()
        );
        let uid = id_of("-u");
        let gid = id_of("-g");
        let dir = parent.join("pg");
        std::fs::create_dir_all(dir.join("sock")).expect("create the PostgreSQL dirs");
        for path in [parent, dir.as_path(), dir.join("sock").as_path()] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("give the dirs to postgres");
        }
        let status = Command::new(Path::new(POSTGRES_BIN).join("initdb"))
            .args(["-A", "trust", "-U", "kuboard", "--no-sync", "-D"])
            .arg(dir.join("data"))
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let mut server = Postgres {
            dir,
            port: free_port(),
            uid,
            gid,
            child: None,
        };
        server.start();
        server
    }

    pub fn uri(&self) -> String {
        format!("postgresql://kuboard@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("open the PostgreSQL log");
        let child = Command::new(Path::new(POSTGRES_BIN).join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.join("sock"))
            .args(["-c", "fsync=off"])
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
    }

    /// Fast shutdown (SIGINT): clients are disconnected at once.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("PostgreSQL is running");
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if child.try_wait().expect("poll postgres").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("PostgreSQL did not stop within 20 s");
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match tokio_postgres::connect(&self.uri(), tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    return client;
                }
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("PostgreSQL does not accept connections: {error}"),
            }
        }
    }

    /// `request_uri` of the rows with `verb`, oldest first (empty while the table is missing).
    /// Every event's request URI in the order the rows arrived in the table (their physical order:
    /// the table only ever receives inserts from one writer), whatever their timestamps say.
    pub async fn uris_in_arrival_order(&self) -> Vec<String> {
        let client = self.client().await;
        match client
            .query("SELECT request_uri FROM kuboard_audit ORDER BY ctid", &[])
            .await
        {
            Ok(rows) => rows.iter().map(|row| row.get::<_, String>(0)).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub async fn uris(&self, verb: &str) -> Vec<String> {
        let client = self.client().await;
        match client
            .query(
                "SELECT request_uri FROM kuboard_audit WHERE verb = $1 ORDER BY ts, audit_id",
                &[&verb],
            )
            .await
        {
            Ok(rows) => rows.iter().map(|row| row.get::<_, String>(0)).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn id_of(flag: &str) -> u32 {
    let output = Command::new("id").args([flag, "postgres"]).output().expect("run id");
    assert!(
        output.status.success(),
        "the postgres user is missing (Debian package postgresql)"
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("id prints a number")
}

/// Waits until `condition` holds, at most 20 s.
pub async fn wait_for<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(Instant::now() < deadline, "condition not met within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One stored event, as the tests check it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub audit_id: String,
    pub username: String,
    pub cluster: String,
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub request_uri: String,
    pub status_code: i32,
    pub duration_ms: i64,
    pub decision: String,
    pub message: String,
    /// Every column as text, joined, to look for what must never be stored.
    pub all_text: String,
}

impl Postgres {
    /// Every stored event, oldest first (empty while the table is missing).
    pub async fn events(&self) -> Vec<StoredEvent> {
        let client = self.client().await;
        let rows = match client
            .query(
                "SELECT audit_id, username, cluster, verb, resource, subresource, namespace, request_uri, \
                 status_code, duration_ms, decision, message, \
                 concat_ws('|', groups, client, source_ip, user_agent, api_group, name) \
                 FROM kuboard_audit ORDER BY ts, audit_id",
                &[],
            )
            .await
        {
            Ok(rows) => rows,
            Err(_) => return Vec::new(),
        };
        rows.iter()
            .map(|row| {
                let text = |index: usize| row.get::<_, Option<String>>(index).unwrap_or_default();
                let mut event = StoredEvent {
                    audit_id: text(0),
                    username: text(1),
                    cluster: text(2),
                    verb: text(3),
                    resource: text(4),
                    subresource: text(5),
                    namespace: text(6),
                    request_uri: text(7),
                    status_code: row.get::<_, Option<i32>>(8).unwrap_or_default(),
                    duration_ms: row.get::<_, Option<i64>>(9).unwrap_or_default(),
                    decision: text(10),
                    message: text(11),
                    all_text: text(12),
                };
                event.all_text = format!(
                    "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                    event.all_text,
                    event.audit_id,
                    event.username,
                    event.cluster,
                    event.verb,
                    event.resource,
                    event.subresource,
                    event.namespace,
                    event.request_uri,
                    event.decision,
                    event.message
                );
                event
            })
            .collect()
    }

    /// Waits (at most 20 s) until the stored events satisfy `condition`; returns them.
    pub async fn wait_events(&self, what: &str, condition: impl Fn(&[StoredEvent]) -> bool) -> Vec<StoredEvent> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events().await;
            if condition(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within 20 s; stored: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A fake cluster whose RBAC gives Kuboard's administrators full access, with a pod `shell`.
pub async fn fake_cluster() -> kuboard_testkit::FakeCluster {
    let cluster = kuboard_testkit::FakeCluster::start_with(kuboard_testkit::FakeClusterOptions::default())
        .await
        .expect("the fake cluster starts");
    let mut rbac = kuboard_testkit::Rbac::default();
    rbac.rules
        .push(kuboard_testkit::PolicyRule::admin_group("kuboard:administrators"));
    rbac.rules
        .push(kuboard_testkit::PolicyRule::viewer_group("kuboard:viewers"));
    cluster.state.set_rbac(rbac);
    cluster
        .state
        .create_object(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "shell", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}))
        .expect("the pod is created");
    cluster
}

/// Imports `cluster` into the replica as `fake` (administrator token).
pub async fn import_fake(kuboard: &crate::common::Replica, token: &str, cluster: &kuboard_testkit::FakeCluster) {
    let kubeconfig = kuboard_testkit::certs::kubeconfig(
        &cluster.urls().join(","),
        &cluster.ca.cert_pem,
        &kuboard_testkit::Credential::ClientCertificate(cluster.admin.clone()),
        None,
    );
    let (status, body) = kuboard
        .post_json(
            "/kuboard-api/cluster-imports",
            token,
            &serde_json::json!({"name": "fake", "kubeconfig": kubeconfig}),
        )
        .await;
    assert_eq!(status, 201, "import: {body}");
}

/// A config map as the fake apiserver takes it.
pub fn configmap(name: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": {"k": name}})
}

/// Opens an exec websocket through the proxy by hand (HTTP/1.1 upgrade), reads what the fake
/// apiserver sends until it closes (at most 10 s), and closes. Returns the status line. A refused
/// upgrade is read up to the end of its head.
pub async fn exec_session(kuboard: &crate::common::Replica, token: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", kuboard.port))
        .await
        .expect("connect to kuboard");
    let request = format!(
        "GET /k8s-api/fake/api/v1/namespaces/default/pods/shell/exec?command=echo&command=hi&stdout=true HTTP/1.1\r\n\
         Host: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n",
        kuboard.port
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("send the upgrade");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tokio::io::AsyncReadExt::read(&mut stream, &mut buffer)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
        // A refusal is an ordinary answer on a connection kept open: its head is enough.
        let head_done = received.windows(4).any(|window| window == b"\r\n\r\n");
        if head_done && !received.starts_with(b"HTTP/1.1 101") {
            break;
        }
    }
    drop(stream);
    let text = String::from_utf8_lossy(&received);
    text.lines().next().unwrap_or("").to_string()
}
