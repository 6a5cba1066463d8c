//! The `kuboard-fake-apiserver` binary grants the groups named with `--admin-group` everything, as Kuboard's
//! proxy needs: it impersonates its users with their Kuboard groups.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_GROUP: &str = "kuboard:administrators";

/// The binary, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `--admin-group` and returns it with the server URL and the admin token, read from
/// the kubeconfig it writes once it listens.
fn start(dir: &Path) -> (Running, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_kuboard-fake-apiserver"))
        .arg("--dir")
        .arg(dir)
        .args(["--bind", "127.0.0.1", "--pods", "3", "--admin-group", ADMIN_GROUP])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("the fake apiserver binary starts");
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let kubeconfig = loop {
        if let Some(status) = running.0.try_wait().expect("the child's status is readable") {
            panic!("the fake apiserver exited early: {status}");
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("token.kubeconfig")) {
            if text.contains("token:") {
                break text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the fake apiserver wrote no kubeconfig within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let field = |name: &str| {
        kubeconfig
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .map(|value| value.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("the kubeconfig has a `{name}` line"))
    };
    let url = field("server:");
    let token = field("token:");
    (running, url, token)
}

#[tokio::test]
async fn admin_group_members_may_list_pods_and_others_are_refused() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let (_running, url, token) = start(dir.path());
    let ca = std::fs::read(dir.path().join("ca.crt")).expect("the CA is written");
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("the CA parses"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("the client builds");
    // The token belongs to a `system:masters` user, who may impersonate anyone, as Kuboard's imported
    // cluster credential does.
    let list = |group: &'static str| {
        client
            .get(format!("{url}/api/v1/namespaces/default/pods"))
            .bearer_auth(&token)
            .header("Impersonate-User", "alice")
            .header("Impersonate-Group", group)
            .send()
    };

    let allowed = list(ADMIN_GROUP).await.expect("the list request is answered");
    assert_eq!(allowed.status(), 200);
    let body: serde_json::Value = allowed.json().await.expect("the list is JSON");
    assert_eq!(body["kind"], "PodList");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(3));

    let refused = list("kuboard:others").await.expect("the list request is answered");
    assert_eq!(refused.status(), 403);
    let status: serde_json::Value = refused.json().await.expect("the refusal is a Status");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \
         \"default\""
    );
}
