//! Runs a fake cluster: N TLS apiserver instances sharing one state, with kubeconfigs written to a
//! directory, until interrupted.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kuboard_testkit::{Credential, FakeCluster, FakeClusterOptions, PolicyRule, Rbac, StateConfig, UserInfo};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "A fake Kubernetes apiserver for kuboard's tests (kubectl works against it)")]
struct Arguments {
    /// How many instances serve the shared state.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// The address the instances listen on (each on its own free port).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Where the CA, `admin.kubeconfig`, `viewer.kubeconfig` and one `admin-N.kubeconfig` per instance go.
    #[arg(long)]
    dir: PathBuf,
    /// Pods created in `default` at start (named `pod-00000`, ...).
    #[arg(long, default_value_t = 0)]
    pods: usize,
    /// Bookmark interval of watches, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    bookmark_interval_ms: u64,
    /// Extra names or addresses the serving certificate covers.
    #[arg(long)]
    server_name: Vec<String>,
    /// A group granted everything, like `system:masters` (repeatable). Kuboard's proxy impersonates its
    /// users with their Kuboard groups, so granting `kuboard:administrators` lets its administrators through.
    #[arg(long, value_name = "GROUP")]
    admin_group: Vec<String>,
    /// A group granted read-only access (get, list, watch on everything; repeatable), such as
    /// `kuboard:viewers`, the group of Kuboard's viewer role.
    #[arg(long, value_name = "GROUP")]
    viewer_group: Vec<String>,
    /// Run the Deployment and ReplicaSet controllers: Deployments get ReplicaSets, ReplicaSets get pods.
    #[arg(long)]
    workload_controllers: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let arguments = Arguments::parse();
    let options = FakeClusterOptions {
        instances: arguments.instances,
        state: StateConfig {
            bookmark_interval: Duration::from_millis(arguments.bookmark_interval_ms),
            simulate_workloads: arguments.workload_controllers,
            ..StateConfig::default()
        },
        bind_ip: arguments.bind,
        server_names: arguments.server_name.clone(),
    };
    let cluster = FakeCluster::start_with(options).await?;
    let mut rbac = Rbac::default();
    rbac.rules.push(PolicyRule::viewer_group("viewers"));
    rbac.rules
        .extend(arguments.admin_group.iter().map(|group| PolicyRule::admin_group(group)));
    rbac.rules.extend(
        arguments
            .viewer_group
            .iter()
            .map(|group| PolicyRule::viewer_group(group)),
    );
    cluster.state.set_rbac(rbac);
    for index in 0..arguments.pods {
        cluster
            .state
            .create_object(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("pod-{index:05}"), "namespace": "default", "labels": {"app": "seed"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]}}))
            .map_err(|e| anyhow::anyhow!("create a seed pod: {e}"))?;
    }
    std::fs::create_dir_all(&arguments.dir).with_context(|| format!("create {}", arguments.dir.display()))?;
    let write = |name: &str, text: &str| {
        let path = arguments.dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    };
    write("ca.crt", &cluster.ca.cert_pem)?;
    write("admin.kubeconfig", &cluster.admin_kubeconfig(0))?;
    for index in 0..cluster.servers.len() {
        write(&format!("admin-{index}.kubeconfig"), &cluster.admin_kubeconfig(index))?;
    }
    write(
        "viewer.kubeconfig",
        &cluster.kubeconfig(0, &cluster.client_credential("viewer", &["viewers"])?),
    )?;
    let token = uuid::Uuid::new_v4().to_string();
    cluster
        .state
        .add_token(&token, UserInfo::new("token-admin", &["system:masters"]));
    write("token.kubeconfig", &cluster.kubeconfig(0, &Credential::Token(token)))?;
    for server in &cluster.servers {
        println!("{} {}", server.name, server.url());
    }
    println!("kubeconfigs in {}", arguments.dir.display());
    tokio::signal::ctrl_c().await.context("wait for an interrupt")?;
    cluster.stop().await;
    Ok(())
}
