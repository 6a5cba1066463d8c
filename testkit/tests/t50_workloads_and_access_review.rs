//! The Deployment and ReplicaSet controllers (`StateConfig::simulate_workloads`) driven by the machine's
//! real kubectl — create, `scale`, `rollout restart`, a pod deleted, the Deployment deleted — and
//! `SelfSubjectAccessReview` answered from the fake's RBAC rules; pod logs with per-line times (`--timestamps`,
//! `--since-time`, `--previous`).

mod common;

use common::KubectlHome;
use kuboard_testkit::{resources, Credential, FakeCluster, FakeClusterOptions, PolicyRule, Rbac, StateConfig};
use serde_json::{json, Value};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
";

async fn start(simulate_workloads: bool) -> FakeCluster {
    let options = FakeClusterOptions {
        instances: 1,
        state: StateConfig {
            simulate_workloads,
            ..StateConfig::default()
        },
        ..FakeClusterOptions::default()
    };
    let cluster = FakeCluster::start_with(options).await.expect("the cluster starts");
    let mut rbac = Rbac::default();
    rbac.rules.push(PolicyRule::viewer_group("viewers"));
    cluster.state.set_rbac(rbac);
    cluster
}

/// The objects of `plural` in `default`, by name, with the controlling owner's name and kind.
fn owned(cluster: &FakeCluster, group: &str, plural: &str) -> Vec<(String, String, Value)> {
    let resource = resources::find(group, "v1", plural).expect("served");
    let (items, _) = cluster.state.snapshot(resource, Some("default"));
    let mut found: Vec<(String, String, Value)> = items
        .iter()
        .map(|object| {
            let owner = object
                .pointer("/metadata/ownerReferences/0/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = object["metadata"]["name"].as_str().unwrap_or("").to_string();
            (name, owner, (**object).clone())
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn revision(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
}

/// The revision numbers of `kubectl rollout history` (the lines below its REVISION header).
fn history_revisions(out: &str) -> Vec<&str> {
    out.lines()
        .skip_while(|line| !line.starts_with("REVISION"))
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}

fn replicas(object: &Value) -> i64 {
    object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(-1)
}

#[tokio::test]
async fn deployments_make_replicasets_and_pods_as_kubectl_drives_them() {
    common::init_tracing();
    let cluster = start(true).await;
    let home = KubectlHome::new();
    let admin = home.write("admin", &cluster.admin_kubeconfig(0));

    tracing::info!("phase: a Deployment of 2 gets one ReplicaSet of 2 and its 2 pods");
    let (code, _, err) = home.run(&admin, &["apply", "-f", "-"], Some(DEPLOYMENT)).await;
    assert_eq!(code, 0, "{err}");
    let sets = owned(&cluster, "apps", "replicasets");
    assert_eq!(sets.len(), 1, "{sets:?}");
    let (first_set, owner, set) = &sets[0];
    assert_eq!(owner, "web");
    assert!(
        first_set.starts_with("web-") && first_set.len() == "web-".len() + 10,
        "{first_set}"
    );
    assert_eq!(replicas(set), 2);
    let hash = set
        .pointer("/metadata/labels/pod-template-hash")
        .and_then(Value::as_str)
        .expect("hashed");
    assert_eq!(
        set.pointer("/spec/selector/matchLabels"),
        Some(&serde_json::json!({"app": "web", "pod-template-hash": hash}))
    );
    let pods = owned(&cluster, "", "pods");
    assert_eq!(pods.len(), 2, "{pods:?}");
    for (name, owner, pod) in &pods {
        assert_eq!(owner, first_set);
        assert!(name.starts_with(&format!("{first_set}-")), "{name}");
        assert_eq!(pod.pointer("/metadata/labels/app").and_then(Value::as_str), Some("web"));
        assert_eq!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Running"));
    }
    let (code, out, err) = home
        .run(&admin, &["get", "pods", "-l", "app=web", "-o", "name"], None)
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    tracing::info!("phase: kubectl scale to 4, then to 1 (the newest pods go)");
    let (code, _, err) = home
        .run(&admin, &["scale", "deployment/web", "--replicas=4"], None)
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(owned(&cluster, "", "pods").len(), 4);
    let oldest: Vec<String> = pods.iter().map(|(name, _, _)| name.clone()).collect();
    let (code, _, err) = home
        .run(&admin, &["scale", "deployment/web", "--replicas=1"], None)
        .await;
    assert_eq!(code, 0, "{err}");
    let left = owned(&cluster, "", "pods");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        oldest.contains(&left[0].0),
        "an original pod is kept, {} is not one",
        left[0].0
    );
    assert_eq!(replicas(&owned(&cluster, "apps", "replicasets")[0].2), 1);

    tracing::info!("phase: a deleted pod is replaced by its ReplicaSet");
    let (code, _, err) = home.run(&admin, &["delete", "pod", &left[0].0], None).await;
    assert_eq!(code, 0, "{err}");
    let replaced = owned(&cluster, "", "pods");
    assert_eq!(replaced.len(), 1);
    assert_ne!(replaced[0].0, left[0].0);
    assert_eq!(&replaced[0].1, first_set);

    tracing::info!("phase: kubectl rollout restart: a new ReplicaSet takes the pods, the old one goes to 0");
    let (code, _, err) = home
        .run(&admin, &["scale", "deployment/web", "--replicas=3"], None)
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = home.run(&admin, &["rollout", "restart", "deployment/web"], None).await;
    assert_eq!(code, 0, "{err}");
    let sets = owned(&cluster, "apps", "replicasets");
    assert_eq!(sets.len(), 2, "{sets:?}");
    let (new_set, _, new) = sets
        .iter()
        .find(|(name, _, _)| name != first_set)
        .expect("a new ReplicaSet");
    assert_eq!(replicas(new), 3);
    assert!(new
        .pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
        .is_some());
    let old = &sets
        .iter()
        .find(|(name, _, _)| name == first_set)
        .expect("the old one stays")
        .2;
    assert_eq!(replicas(old), 0);
    let pods = owned(&cluster, "", "pods");
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|(_, owner, _)| owner == new_set), "{pods:?}");

    assert_eq!(revision(old), Some("1"));
    assert_eq!(revision(new), Some("2"));
    let (code, out, err) = home.run(&admin, &["rollout", "history", "deployment/web"], None).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(history_revisions(&out), ["1", "2"], "{out}");

    tracing::info!("phase: kubectl rollout undo: the first template again, its ReplicaSet renumbered 3 takes the pods");
    let (code, _, err) = home.run(&admin, &["rollout", "undo", "deployment/web"], None).await;
    assert_eq!(code, 0, "{err}");
    let sets = owned(&cluster, "apps", "replicasets");
    assert_eq!(sets.len(), 2, "{sets:?}");
    let back = &sets
        .iter()
        .find(|(name, _, _)| name == first_set)
        .expect("the first ReplicaSet")
        .2;
    assert_eq!(revision(back), Some("3"));
    assert_eq!(replicas(back), 3);
    let pods = owned(&cluster, "", "pods");
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|(_, owner, _)| owner == first_set), "{pods:?}");
    let (code, out, err) = home.run(&admin, &["rollout", "history", "deployment/web"], None).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(history_revisions(&out), ["2", "3"], "{out}");

    tracing::info!("phase: deleting the Deployment deletes its ReplicaSets and pods");
    let (code, _, err) = home.run(&admin, &["delete", "deployment", "web"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(owned(&cluster, "apps", "replicasets").is_empty());
    assert!(owned(&cluster, "", "pods").is_empty());
    cluster.stop().await;
}

#[tokio::test]
async fn without_the_controllers_a_deployment_makes_no_pods() {
    common::init_tracing();
    let cluster = start(false).await;
    let home = KubectlHome::new();
    let admin = home.write("admin", &cluster.admin_kubeconfig(0));
    let (code, _, err) = home.run(&admin, &["apply", "-f", "-"], Some(DEPLOYMENT)).await;
    assert_eq!(code, 0, "{err}");
    assert!(owned(&cluster, "apps", "replicasets").is_empty());
    assert!(owned(&cluster, "", "pods").is_empty());
    cluster.stop().await;
}

/// Posts a `SelfSubjectAccessReview` as JSON (what the web console sends; kubectl's `auth can-i` sends
/// protobuf, which the fake does not decode) and returns the status code and `status.allowed`.
async fn review(
    client: &reqwest::Client,
    cluster: &FakeCluster,
    attributes: Value,
    headers: &[(&str, &str)],
) -> (u16, Option<bool>) {
    let mut request = client
        .post(format!(
            "{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            cluster.urls()[0]
        ))
        .json(
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": attributes}}),
        );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the fake answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON");
    (status, body.pointer("/status/allowed").and_then(Value::as_bool))
}

#[tokio::test]
async fn access_reviews_answer_from_the_rbac_rules() {
    common::init_tracing();
    let cluster = start(false).await;
    let admin = common::admin_client(&cluster);
    let viewer = match cluster.client_credential("viewer", &["viewers"]).expect("a credential") {
        Credential::ClientCertificate(key) => {
            common::client_with(&cluster, Some(format!("{}{}", key.cert_pem, key.key_pem)))
        }
        Credential::Token(_) => unreachable!("client_credential issues certificates"),
    };
    let delete_deployments =
        json!({"verb": "delete", "group": "apps", "resource": "deployments", "namespace": "default"});
    let scale = json!({"verb": "patch", "group": "apps", "resource": "deployments", "subresource": "scale",
                       "namespace": "default", "name": "web"});
    let list_pods = json!({"verb": "list", "resource": "pods", "namespace": "default"});
    let exec = json!({"verb": "create", "resource": "pods", "subresource": "exec", "namespace": "default"});
    assert_eq!(
        review(&admin, &cluster, delete_deployments.clone(), &[]).await,
        (201, Some(true))
    );
    assert_eq!(review(&admin, &cluster, scale.clone(), &[]).await, (201, Some(true)));
    assert_eq!(review(&viewer, &cluster, list_pods, &[]).await, (201, Some(true)));
    assert_eq!(
        review(&viewer, &cluster, delete_deployments.clone(), &[]).await,
        (201, Some(false))
    );
    assert_eq!(review(&viewer, &cluster, scale, &[]).await, (201, Some(false)));
    assert_eq!(review(&viewer, &cluster, exec, &[]).await, (201, Some(false)));
    // The review is about the impersonated user, as every request is.
    let as_viewer = [("impersonate-user", "alice"), ("impersonate-group", "viewers")];
    assert_eq!(
        review(&admin, &cluster, delete_deployments, &as_viewer).await,
        (201, Some(false))
    );
    // A review without a verb is invalid; one of another kind is refused.
    assert_eq!(review(&admin, &cluster, json!({"resource": "pods"}), &[]).await.0, 422);
    let response = admin
        .post(format!(
            "{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            cluster.urls()[0]
        ))
        .json(&json!({"kind": "Pod"}))
        .send()
        .await
        .expect("the fake answers");
    assert_eq!(response.status().as_u16(), 400);

    // Discovery lists the group, so clients find the review.
    let groups: Value = admin
        .get(format!("{}/apis", cluster.urls()[0]))
        .send()
        .await
        .expect("the fake answers")
        .json()
        .await
        .expect("JSON");
    assert!(groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .any(|group| group["name"] == "authorization.k8s.io"));
    cluster.stop().await;
}

#[tokio::test]
async fn logs_keep_the_time_of_each_line_for_timestamps_and_since_time() {
    common::init_tracing();
    let cluster = start(false).await;
    cluster
        .state
        .create_object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}),
        )
        .expect("created");
    let home = KubectlHome::new();
    let admin = home.write("admin", &cluster.admin_kubeconfig(0));

    let (code, out, err) = home.run(&admin, &["logs", "app", "--timestamps"], None).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<(&str, &str)> = out
        .lines()
        .map(|line| line.split_once(' ').expect("a timestamp, a space, the line"))
        .collect();
    assert_eq!(lines.len(), 10, "{out}");
    for (index, (time, text)) in lines.iter().enumerate() {
        assert_eq!(*text, format!("app/main line {}", index + 1));
        // The kubelet's format: nine fractional digits, UTC.
        assert!(
            time.len() == 30 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
            "{time}"
        );
    }
    assert!(
        lines.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "times increase: {out}"
    );
    // The same times every time the log is read.
    let (_, again, _) = home.run(&admin, &["logs", "app", "--timestamps"], None).await;
    assert_eq!(again, out);

    // sinceTime keeps the lines written at or after its second (the kubelet gets whole seconds): once
    // the clock is past the second of line 10, a new line is the only one from its second on.
    let last_second = &lines[9].0[..19];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")[..19]
        .le(last_second)
    {
        assert!(std::time::Instant::now() < deadline, "the clock stands still");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cluster.state.append_log("default", "app", "main", "app/main line 11");
    let (_, out, _) = home.run(&admin, &["logs", "app", "--timestamps"], None).await;
    let eleventh = out
        .lines()
        .last()
        .and_then(|line| line.split_once(' '))
        .expect("line 11")
        .0
        .to_string();
    for (since, expected) in [
        (eleventh.clone(), vec!["app/main line 11".to_string()]),
        // The time of line 7 selects every line of its second, the ones before line 7 included.
        (
            lines[6].0.to_string(),
            lines
                .iter()
                .filter(|(time, _)| time[..19] >= lines[6].0[..19])
                .map(|(_, text)| text.to_string())
                .chain(["app/main line 11".to_string()])
                .collect(),
        ),
    ] {
        let (code, out, err) = home
            .run(
                &admin,
                &["logs", "app", "--timestamps", &format!("--since-time={since}")],
                None,
            )
            .await;
        assert_eq!(code, 0, "{err}");
        let texts: Vec<&str> = out
            .lines()
            .filter_map(|line| line.split_once(' ').map(|(_, text)| text))
            .collect();
        assert_eq!(texts, expected, "since {since}: {out}");
    }
    // kubectl checks --since-time itself; the apiserver refuses a bad sinceTime too.
    let response = common::admin_client(&cluster)
        .get(format!(
            "{}/api/v1/namespaces/default/pods/app/log?sinceTime=yesterday",
            cluster.urls()[0]
        ))
        .send()
        .await
        .expect("the fake answers");
    assert_eq!(response.status().as_u16(), 400);

    // The fake's containers never restart: no previous log, in the kubelet's words.
    let (code, _, err) = home.run(&admin, &["logs", "app", "--previous"], None).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("previous terminated container \"main\" in pod \"app\" not found"),
        "{err}"
    );
    cluster.stop().await;
}
