//! The machine's real kubectl against the fake: get, apply (client- and server-side), delete, logs -f,
//! exec (non-interactive, piped stdin, and a terminal through `script`), chunked lists, raw watches with
//! bookmarks and 410, impersonation with RBAC denial, client certificates and tokens, and two instances
//! sharing state with one stopped.

mod common;

use std::time::Duration;

use common::KubectlHome;
use kuboard_testkit::{
    resources, Credential, FakeCluster, FakeClusterOptions, PolicyRule, Rbac, StateConfig, UserInfo,
};
use serde_json::json;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1
";

async fn start() -> FakeCluster {
    let options = FakeClusterOptions {
        instances: 2,
        state: StateConfig {
            bookmark_interval: Duration::from_millis(200),
            log_follow_interval: Duration::from_millis(50),
            log_follow_max_lines: 3,
            ..StateConfig::default()
        },
        ..FakeClusterOptions::default()
    };
    let cluster = FakeCluster::start_with(options).await.expect("the cluster starts");
    let mut rbac = Rbac::default();
    rbac.rules.push(PolicyRule::viewer_group("viewers"));
    cluster.state.set_rbac(rbac);
    cluster
        .state
        .create_object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shell", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}),
        )
        .expect("created");
    cluster
}

#[tokio::test]
async fn kubectl_reads_writes_and_streams() {
    common::init_tracing();
    let cluster = start().await;
    let home = KubectlHome::new();
    let admin = home.write("admin", &cluster.admin_kubeconfig(0));

    tracing::info!("phase: get through discovery and server-side tables");
    let (code, out, err) = home.run(&admin, &["get", "pods"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("NAME") && out.contains("shell") && out.contains("Running"),
        "{out}"
    );
    let (code, out, _) = home.run(&admin, &["get", "nodes,namespaces"], None).await;
    assert_eq!(code, 0);
    assert!(out.contains("fake-node-1") && out.contains("kube-system"), "{out}");
    let (code, _, err) = home.run(&admin, &["get", "pod", "missing"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("pods \"missing\" not found"), "{err}");

    tracing::info!("phase: apply creates, apply again patches (strategic merge by container name)");
    let manifest = home.write("deployment.yaml", DEPLOYMENT);
    let manifest_path = manifest.to_str().expect("a UTF-8 path");
    let (code, out, err) = home.run(&admin, &["apply", "-f", manifest_path], None).await;
    assert_eq!((code, out.trim()), (0, "deployment.apps/web created"), "{err}");
    let changed = DEPLOYMENT
        .replace("nginx:1.25", "nginx:1.27")
        .replace("replicas: 2", "replicas: 3");
    let changed = changed.replace("      - name: sidecar\n        image: busybox:1\n", "");
    home.write("deployment.yaml", &changed);
    let (code, out, err) = home.run(&admin, &["apply", "-f", manifest_path], None).await;
    assert_eq!((code, out.trim()), (0, "deployment.apps/web configured"), "{err}");
    let deployments = resources::find("apps", "v1", "deployments").expect("served");
    let stored = cluster.state.get(deployments, Some("default"), "web").expect("stored");
    assert_eq!(stored["spec"]["replicas"], 3);
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "sidecar removed"
    );
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(stored["metadata"]["generation"], 2);
    assert!(stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
    let (code, out, _) = home.run(&admin, &["apply", "-f", manifest_path], None).await;
    assert_eq!((code, out.trim()), (0, "deployment.apps/web unchanged"));
    let (code, out, err) = home
        .run(&admin, &["scale", "deployment", "web", "--replicas=4"], None)
        .await;
    assert_eq!((code, out.trim()), (0, "deployment.apps/web scaled"), "{err}");
    let stored = cluster.state.get(deployments, Some("default"), "web").expect("stored");
    assert_eq!(stored["spec"]["replicas"], 4);
    let (code, out, err) = home
        .run(&admin, &["scale", "deployment", "web", "--replicas=3"], None)
        .await;
    assert_eq!((code, out.trim()), (0, "deployment.apps/web scaled"), "{err}");
    let (code, out, _) = home.run(&admin, &["get", "deploy", "web"], None).await;
    assert_eq!(code, 0);
    assert!(out.contains("3/3"), "{out}");
    let (code, out, err) = home
        .run(&admin, &["apply", "--server-side", "-f", manifest_path], None)
        .await;
    assert_eq!(
        (code, out.trim()),
        (0, "deployment.apps/web serverside-applied"),
        "{err}"
    );

    tracing::info!("phase: delete");
    let (code, out, err) = home.run(&admin, &["delete", "-f", manifest_path], None).await;
    assert_eq!((code, out.trim()), (0, "deployment.apps \"web\" deleted"), "{err}");
    assert!(cluster.state.get(deployments, Some("default"), "web").is_err());

    tracing::info!("phase: logs, then logs -f which the fake ends after 3 more lines");
    let (code, out, _) = home.run(&admin, &["logs", "shell", "--tail=2"], None).await;
    assert_eq!((code, out.as_str()), (0, "shell/main line 9\nshell/main line 10\n"));
    let (code, out, _) = home.run(&admin, &["logs", "-f", "shell", "--tail=1"], None).await;
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "shell/main line 10",
            "shell/main line 11",
            "shell/main line 12",
            "shell/main line 13"
        ]
    );

    tracing::info!("phase: exec, non-interactive and with piped stdin");
    let (code, out, err) = home.run(&admin, &["exec", "shell", "--", "echo", "hi"], None).await;
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");
    let (code, _, err) = home
        .run(
            &admin,
            &["exec", "shell", "--", "sh", "-c", "echo oops >&2; exit 3"],
            None,
        )
        .await;
    assert_eq!(code, 3, "{err}");
    let (code, out, _) = home
        .run(
            &admin,
            &["exec", "-i", "shell", "--", "sh"],
            Some("hostname\ncat /etc/hostname\necho done\nexit 4\n"),
        )
        .await;
    assert_eq!((code, out.as_str()), (4, "shell\nshell\ndone\n"));
    let (code, out, _) = home
        .run(&admin, &["exec", "-i", "shell", "--", "cat"], Some("through stdin\n"))
        .await;
    assert_eq!((code, out.as_str()), (0, "through stdin\n"));

    tracing::info!("phase: exec -it on a terminal (script gives kubectl a pty)");
    let command = format!(
        "{} --kubeconfig {} --cache-dir {} exec -it shell -- sh",
        common::KUBECTL,
        admin.display(),
        home.dir.path().join("cache").display()
    );
    let mut script = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) starts; it is needed to give kubectl a terminal");
    let mut stdin = script.stdin.take().expect("piped");
    let mut stdout = script.stdout.take().expect("piped");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut seen = Vec::new();
    let (mut typed_echo, mut typed_exit) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&seen).to_string();
        if text.contains("# ") && !typed_echo {
            stdin.write_all(b"echo tty-ok\r").await.expect("script reads");
            typed_echo = true;
        }
        if text.contains("\r\ntty-ok\r\n") && !typed_exit {
            stdin.write_all(b"exit 5\r").await.expect("script reads");
            typed_exit = true;
        }
        let read = tokio::time::timeout_at(deadline, stdout.read(&mut buffer))
            .await
            .expect("the session answers in time");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    let status = tokio::time::timeout_at(deadline, script.wait())
        .await
        .expect("kubectl exits")
        .expect("status");
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("# echo tty-ok\r\ntty-ok\r\n"),
        "the terminal echoes and answers: {text:?}"
    );
    assert_eq!(status.code(), Some(5), "{text:?}");
}

#[tokio::test]
async fn kubectl_pages_watches_and_expires() {
    common::init_tracing();
    let cluster = start().await;
    let home = KubectlHome::new();
    let admin = home.write("admin", &cluster.admin_kubeconfig(0));
    cluster
        .state
        .create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bulk"}}))
        .expect("created");
    for index in 0..500 {
        cluster
            .state
            .create_object(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("bulk-{index:03}"), "namespace": "bulk"},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]}}))
            .expect("created");
    }

    tracing::info!("phase: --chunk-size 100 over 500 pods makes 5 requests joined into one table");
    let (code, out, err) = home
        .run(&admin, &["get", "pods", "-n", "bulk", "--chunk-size=100", "-v=6"], None)
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 501, "a header and 500 rows");
    let requests = err
        .lines()
        .filter(|l| l.contains("/api/v1/namespaces/bulk/pods?"))
        .collect::<Vec<_>>();
    assert_eq!(requests.len(), 5, "{requests:#?}");
    assert_eq!(requests.iter().filter(|l| l.contains("continue=")).count(), 4);

    tracing::info!("phase: a raw watch with bookmarks");
    let version = cluster.state.resource_version();
    let path = format!(
        "/api/v1/namespaces/default/pods?watch=1&allowWatchBookmarks=true&resourceVersion={version}&timeoutSeconds=1"
    );
    let (code, out, err) = home.run(&admin, &["get", "--raw", &path], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#""type":"BOOKMARK""#), "{out}");
    assert!(out.contains(&format!(r#""resourceVersion":"{version}""#)), "{out}");

    tracing::info!("phase: after a compaction a watch from the old version gets 410 Expired");
    cluster
        .state
        .create_object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}),
        )
        .expect("created");
    cluster.state.compact();
    let path = format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={version}");
    let (code, out, _) = home.run(&admin, &["get", "--raw", &path], None).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(r#""type":"ERROR""#) && out.contains(r#""code":410"#) && out.contains("Expired"),
        "{out}"
    );
}

#[tokio::test]
async fn kubectl_identities_rbac_and_failover() {
    common::init_tracing();
    let cluster = start().await;
    let home = KubectlHome::new();
    let admin = home.write("admin", &cluster.admin_kubeconfig(0));
    let pods = resources::find("", "v1", "pods").expect("served");

    tracing::info!("phase: impersonating a viewer, the admin's delete is forbidden and nothing changes");
    let version = cluster.state.resource_version();
    let (code, _, err) = home
        .run(
            &admin,
            &["delete", "pod", "shell", "--as", "alice", "--as-group", "viewers"],
            None,
        )
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("pods \"shell\" is forbidden: User \"alice\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    assert!(cluster.state.get(pods, Some("default"), "shell").is_ok());
    assert_eq!(cluster.state.resource_version(), version, "nothing was written");
    let (code, out, _) = home
        .run(&admin, &["get", "pods", "--as", "alice", "--as-group", "viewers"], None)
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("shell"));

    tracing::info!("phase: a viewer's own certificate reads, cannot delete and cannot impersonate");
    let viewer = home.write(
        "viewer",
        &cluster.kubeconfig(
            0,
            &cluster
                .client_credential("viewer", &["viewers", "team-a"])
                .expect("issued"),
        ),
    );
    let (code, _, _) = home.run(&viewer, &["get", "pods"], None).await;
    assert_eq!(code, 0);
    let (code, _, err) = home.run(&viewer, &["delete", "pod", "shell"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("User \"viewer\" cannot delete"), "{err}");
    let (code, _, err) = home
        .run(&viewer, &["get", "pods", "--as", "kubernetes-admin"], None)
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("cannot impersonate resource \"users\""), "{err}");
    assert!(cluster.state.get(pods, Some("default"), "shell").is_ok());

    tracing::info!("phase: tokens authenticate; a certificate of another CA or a wrong token does not");
    cluster
        .state
        .add_token("secret-token-for-tests", UserInfo::new("robot", &["system:masters"]));
    let token = home.write(
        "token",
        &cluster.kubeconfig(0, &Credential::Token("secret-token-for-tests".into())),
    );
    assert_eq!(home.run(&token, &["get", "pods"], None).await.0, 0);
    let wrong = home.write("wrong", &cluster.kubeconfig(0, &Credential::Token("wrong".into())));
    let (code, _, err) = home.run(&wrong, &["get", "pods"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("Unauthorized"), "{err}");
    let stranger_ca = kuboard_testkit::CertificateAuthority::generate("stranger").expect("a CA");
    let stranger = stranger_ca
        .issue_client("kubernetes-admin", &["system:masters"])
        .expect("issued");
    let foreign = home.write(
        "foreign",
        &cluster.kubeconfig(0, &Credential::ClientCertificate(stranger)),
    );
    let (code, _, err) = home.run(&foreign, &["get", "pods"], None).await;
    assert_eq!(code, 1);
    // The fake refuses the certificate in the TLS handshake. In TLS 1.3 the client's handshake
    // ends before the server has checked its certificate, so kubectl reports either the server's
    // alert ("bad certificate") or, when it wrote its request first, the connection the server
    // closed ("broken pipe", "connection reset"): both are the refusal.
    let lower = err.to_lowercase();
    assert!(
        lower.contains("certificate")
            || err.contains("Unauthorized")
            || lower.contains("broken pipe")
            || lower.contains("connection reset"),
        "{err}"
    );

    tracing::info!("phase: two instances share state; with instance 0 stopped instance 1 serves");
    let second = home.write("second", &cluster.admin_kubeconfig(1));
    // kubectl's generators (`create configmap`, ...) send protobuf, which the fake refuses (415); -f sends JSON.
    let made_on_0 = home.write(
        "made-on-0.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: made-on-0}\ndata: {a: b}\n",
    );
    let made_on_1 = home.write(
        "made-on-1.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: made-on-1}\n",
    );
    let (code, _, err) = home
        .run(&admin, &["create", "-f", made_on_0.to_str().expect("UTF-8")], None)
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = home
        .run(
            &second,
            &["get", "configmap", "made-on-0", "-o", "jsonpath={.data.a}"],
            None,
        )
        .await;
    assert_eq!((code, out.as_str()), (0, "b"));
    cluster.servers[0].stop().await;
    let (code, _, err) = home.run(&admin, &["get", "pods", "--request-timeout=2s"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("refused"), "{err}");
    let (code, _, err) = home
        .run(&second, &["create", "-f", made_on_1.to_str().expect("UTF-8")], None)
        .await;
    assert_eq!(code, 0, "{err}");
    cluster.servers[0].restart().await.expect("restarts");
    let (code, out, _) = home.run(&admin, &["get", "configmaps", "-o", "name"], None).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("configmap/made-on-0") && out.contains("configmap/made-on-1"),
        "{out}"
    );
}
