//! Rust-level semantics of the fake: paged lists and continue tokens, resource versions, conflicts,
//! watches (order, bookmarks, selectors, 410 Expired), and instances sharing state with one stopped.

mod common;

use std::time::{Duration, Instant};

use kuboard_testkit::resources;
use kuboard_testkit::store::ListOptions;
use kuboard_testkit::{FakeCluster, FakeClusterOptions, StateConfig};
use serde_json::{json, Value};

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
}

fn pods() -> &'static resources::ResourceType {
    resources::find("", "v1", "pods").expect("pods are served")
}

#[tokio::test]
async fn list_pages_with_continue_tokens_and_expire_after_compaction() {
    common::init_tracing();
    let state = kuboard_testkit::SharedState::new(StateConfig::default());
    tracing::info!("phase: 500 pods, listed 100 at a time");
    for index in 0..500 {
        state
            .create_object(pod(&format!("p-{index:04}"), json!({"n": (index % 2).to_string()})))
            .expect("created");
    }
    let mut options = ListOptions {
        limit: Some(100),
        ..ListOptions::default()
    };
    let mut names = Vec::new();
    let mut versions = Vec::new();
    let mut remaining = Vec::new();
    for _ in 0..10 {
        let page = state.list(pods(), Some("default"), &options).expect("a page");
        names.extend(
            page.items
                .iter()
                .map(|p| p["metadata"]["name"].as_str().expect("named").to_string()),
        );
        versions.push(page.resource_version);
        remaining.push(page.remaining_item_count);
        match page.continue_token {
            Some(token) => options.continue_token = Some(token),
            None => break,
        }
    }
    assert_eq!(names.len(), 500);
    assert_eq!(names, (0..500).map(|i| format!("p-{i:04}")).collect::<Vec<_>>());
    assert!(
        versions.iter().all(|v| *v == versions[0]),
        "every page reports the first page's version"
    );
    assert_eq!(remaining, vec![Some(400), Some(300), Some(200), Some(100), None]);

    tracing::info!("phase: a label selector pages over matching objects only");
    let selected = ListOptions {
        limit: Some(100),
        label_selector: kuboard_testkit::selector::LabelSelector::parse("n=1").expect("parses"),
        ..ListOptions::default()
    };
    let first = state.list(pods(), None, &selected).expect("a page");
    assert_eq!(first.items.len(), 100);
    assert!(first.items.iter().all(|p| p["metadata"]["labels"]["n"] == "1"));
    assert_eq!(
        first.remaining_item_count, None,
        "Kubernetes omits the count with selectors"
    );

    tracing::info!("phase: a continue token from before a compaction answers 410 Expired");
    let first = state.list(
        pods(),
        Some("default"),
        &ListOptions {
            limit: Some(10),
            ..ListOptions::default()
        },
    );
    let token = first.expect("a page").continue_token.expect("more pages");
    state.create_object(pod("later", json!({}))).expect("created");
    state.compact();
    let expired = state
        .list(
            pods(),
            Some("default"),
            &ListOptions {
                limit: Some(10),
                continue_token: Some(token),
                ..ListOptions::default()
            },
        )
        .expect_err("the token is too old");
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
    assert!(
        expired.continue_token.is_some(),
        "an inconsistent continuation is offered, as Kubernetes does"
    );
    let exact = ListOptions {
        resource_version: Some("3".into()),
        resource_version_match: Some("Exact".into()),
        ..ListOptions::default()
    };
    assert_eq!(
        state.list(pods(), None, &exact).map(|_| ()).map_err(|e| e.code),
        Err(410)
    );
    assert_eq!(
        state
            .list(pods(), None, &ListOptions::default())
            .expect("a full list")
            .items
            .len(),
        501
    );
}

#[tokio::test]
async fn list_of_5000_pods_pages_cheaply() {
    common::init_tracing();
    let cluster = FakeCluster::start(1).await.expect("the cluster starts");
    let started = Instant::now();
    for index in 0..5000 {
        cluster
            .state
            .create_object(pod(&format!("p-{index:05}"), json!({"app": "bulk"})))
            .expect("created");
    }
    tracing::info!(elapsed = ?started.elapsed(), "phase: 5,000 pods created; listing 500 at a time over HTTPS");
    let client = common::admin_client(&cluster);
    let started = Instant::now();
    let mut continue_token = String::new();
    let mut total = 0;
    let mut largest_page = 0;
    for _ in 0..20 {
        let url = format!(
            "{}/api/v1/namespaces/default/pods?limit=500&continue={continue_token}",
            cluster.urls()[0]
        );
        let body = client
            .get(url)
            .send()
            .await
            .expect("the list answers")
            .bytes()
            .await
            .expect("a body");
        largest_page = largest_page.max(body.len());
        let page: Value = serde_json::from_slice(&body).expect("JSON");
        total += page["items"].as_array().expect("items").len();
        match page["metadata"]["continue"].as_str() {
            Some(token) => continue_token = token.to_string(),
            None => break,
        }
    }
    let elapsed = started.elapsed();
    println!("listed 5,000 pods in 10 pages in {elapsed:?}; largest page {largest_page} bytes");
    assert_eq!(total, 5000);
    assert!(
        largest_page < 1 << 20,
        "a page of 500 pods stays under 1 MiB ({largest_page} bytes)"
    );
    assert!(elapsed < Duration::from_secs(10), "paging 5,000 pods took {elapsed:?}");
}

#[tokio::test]
async fn writes_report_kubernetes_status_errors() {
    common::init_tracing();
    let cluster = FakeCluster::start(1).await.expect("the cluster starts");
    let client = common::admin_client(&cluster);
    let base = format!("{}/api/v1/namespaces/default/pods", cluster.urls()[0]);
    tracing::info!("phase: create, duplicate, stale update, missing object");
    let created: Value = client
        .post(&base)
        .json(&pod("a", json!({})))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    let version = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("versioned")
        .to_string();
    assert!(created["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    let duplicate = client
        .post(&base)
        .json(&pod("a", json!({})))
        .send()
        .await
        .expect("answers");
    assert_eq!(duplicate.status(), 409);
    let status: Value = duplicate.json().await.expect("JSON");
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("AlreadyExists"))
    );

    let mut changed = created.clone();
    changed["metadata"]["labels"] = json!({"x": "1"});
    let updated: Value = client
        .put(format!("{base}/a"))
        .json(&changed)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_ne!(updated["metadata"]["resourceVersion"].as_str(), Some(version.as_str()));
    let stale = client
        .put(format!("{base}/a"))
        .json(&changed)
        .send()
        .await
        .expect("answers");
    assert_eq!(stale.status(), 409);
    assert_eq!(stale.json::<Value>().await.expect("JSON")["reason"], "Conflict");
    let missing = client.get(format!("{base}/nope")).send().await.expect("answers");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.expect("JSON")["message"],
        "pods \"nope\" not found"
    );
    let invalid = client
        .post(&base)
        .json(&pod("Bad_Name", json!({})))
        .send()
        .await
        .expect("answers");
    assert_eq!(invalid.status(), 422);

    tracing::info!("phase: merge and JSON patches");
    let merged: Value = client
        .patch(format!("{base}/a"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"y":"2"}}}"#)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(merged["metadata"]["labels"], json!({"x": "1", "y": "2"}));
    let failed = client
        .patch(format!("{base}/a"))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op":"test","path":"/metadata/labels/x","value":"9"}]"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(failed.status(), 422);
    let unchanged = cluster.state.get(pods(), Some("default"), "a").expect("still there");
    assert_eq!(
        unchanged["metadata"]["labels"],
        json!({"x": "1", "y": "2"}),
        "a failed patch changes nothing"
    );
}

/// `dryRun=All` on create, update and patch: the request is validated and answered with the object
/// it would make, nothing is stored and no change is recorded (so no watch sees one); a dry run
/// still meets AlreadyExists and a stale `resourceVersion`'s Conflict.
#[tokio::test]
async fn dry_runs_validate_and_store_nothing() {
    common::init_tracing();
    let cluster = FakeCluster::start(1).await.expect("the cluster starts");
    let client = common::admin_client(&cluster);
    let base = format!("{}/apis/apps/v1/namespaces/default/deployments", cluster.urls()[0]);
    let deployment = |name: &str, replicas: i64| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": [{"name": "main", "image": "nginx"}]}}}})
    };
    let created: Value = client
        .post(&base)
        .json(&deployment("web", 1))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    let stored_version = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("versioned")
        .to_string();
    let deployments = resources::find("apps", "v1", "deployments").expect("deployments are served");
    let version_before = cluster.state.resource_version();

    tracing::info!("phase: a dry-run create answers the would-be object and stores nothing");
    let dry_create = client
        .post(format!("{base}?dryRun=All"))
        .json(&deployment("api", 2))
        .send()
        .await
        .expect("answers");
    assert_eq!(dry_create.status(), 201);
    let would_be: Value = dry_create.json().await.expect("JSON");
    assert_eq!(would_be["metadata"]["name"], "api");
    assert_eq!(would_be["spec"]["replicas"], 2);
    assert!(would_be["metadata"]["uid"].as_str().is_some_and(|uid| uid.len() == 36));
    assert!(
        would_be["metadata"].get("resourceVersion").is_none(),
        "a dry-run create has no version: {would_be}"
    );
    assert!(
        cluster.state.get(deployments, Some("default"), "api").is_err(),
        "nothing stored"
    );
    let duplicate = client
        .post(format!("{base}?dryRun=All"))
        .json(&deployment("web", 2))
        .send()
        .await
        .expect("answers");
    assert_eq!(duplicate.status(), 409);
    assert_eq!(
        duplicate.json::<Value>().await.expect("JSON")["reason"],
        "AlreadyExists"
    );
    let invalid = client
        .post(format!("{base}?dryRun=All"))
        .json(&deployment("Not_Valid", 1))
        .send()
        .await
        .expect("answers");
    assert_eq!(invalid.status(), 422);

    tracing::info!("phase: a dry-run update and patch answer the change, keep the stored version and store nothing");
    let mut changed = created.clone();
    changed["spec"]["replicas"] = json!(5);
    let dry_update = client
        .put(format!("{base}/web?dryRun=All"))
        .json(&changed)
        .send()
        .await
        .expect("answers");
    assert_eq!(dry_update.status(), 200);
    let would_be: Value = dry_update.json().await.expect("JSON");
    assert_eq!(would_be["spec"]["replicas"], 5);
    assert_eq!(would_be["metadata"]["resourceVersion"], stored_version.as_str());
    let dry_patch = client
        .patch(format!("{base}/web?dryRun=All"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"tier":"front"}}}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(dry_patch.status(), 200);
    let would_be: Value = dry_patch.json().await.expect("JSON");
    assert_eq!(would_be["metadata"]["labels"]["tier"], "front");
    let stored = cluster
        .state
        .get(deployments, Some("default"), "web")
        .expect("still there");
    assert_eq!(stored["spec"]["replicas"], 1);
    assert!(
        stored["metadata"].get("labels").is_none(),
        "the dry-run patch stored nothing: {stored}"
    );
    assert_eq!(
        cluster.state.resource_version(),
        version_before,
        "no dry run recorded a change, so no watch saw one"
    );

    tracing::info!("phase: a stale resourceVersion meets the apiserver's Conflict, dry run or not");
    let mut outside = created.clone();
    outside["metadata"]["labels"] = json!({"changed": "outside"});
    let response = client
        .put(format!("{base}/web"))
        .json(&outside)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    for query in ["?dryRun=All", ""] {
        let stale = client
            .put(format!("{base}/web{query}"))
            .json(&changed)
            .send()
            .await
            .expect("answers");
        assert_eq!(stale.status(), 409);
        let status: Value = stale.json().await.expect("JSON");
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(
            status["message"],
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
    }
    let stored = cluster
        .state
        .get(deployments, Some("default"), "web")
        .expect("still there");
    assert_eq!(stored["spec"]["replicas"], 1, "the stale update changed nothing");
}

#[tokio::test]
async fn watches_stream_changes_bookmarks_and_expire() {
    common::init_tracing();
    let options = FakeClusterOptions {
        instances: 1,
        state: StateConfig {
            bookmark_interval: Duration::from_millis(200),
            ..StateConfig::default()
        },
        ..FakeClusterOptions::default()
    };
    let cluster = FakeCluster::start_with(options).await.expect("the cluster starts");
    let client = common::admin_client(&cluster);
    let base = format!("{}/api/v1/namespaces/default/pods", cluster.urls()[0]);
    let start = cluster.state.resource_version();

    tracing::info!("phase: a watch from a version sees ADDED, MODIFIED, DELETED in order, and bookmarks");
    let response = client
        .get(format!(
            "{base}?watch=1&resourceVersion={start}&allowWatchBookmarks=true&labelSelector=app%3Dweb"
        ))
        .send()
        .await
        .expect("the watch starts");
    let mut events = common::LineReader::new(response);
    cluster
        .state
        .create_object(pod("w", json!({"app": "web"})))
        .expect("created");
    cluster
        .state
        .create_object(pod("other", json!({"app": "db"})))
        .expect("created");
    let mut relabelled = (*cluster.state.get(pods(), Some("default"), "w").expect("exists")).clone();
    relabelled["metadata"]["labels"]["tier"] = json!("front");
    cluster
        .state
        .update(pods(), Some("default"), "w", relabelled.clone(), None, false)
        .expect("updated");
    relabelled["metadata"]["labels"]["app"] = json!("gone");
    relabelled["metadata"]["resourceVersion"] = json!("");
    cluster
        .state
        .update(pods(), Some("default"), "w", relabelled, None, false)
        .expect("updated");
    let mut seen = Vec::new();
    let mut bookmark = None;
    for _ in 0..20 {
        let event = events.next(Duration::from_secs(5)).await.expect("the watch goes on");
        let kind = event["type"].as_str().expect("typed").to_string();
        let version: u64 = event["object"]["metadata"]["resourceVersion"]
            .as_str()
            .expect("versioned")
            .parse()
            .expect("numeric");
        if kind == "BOOKMARK" {
            bookmark = Some(version);
            if seen.len() == 3 {
                break;
            }
            continue;
        }
        seen.push((
            kind,
            event["object"]["metadata"]["name"].as_str().expect("named").to_string(),
            version,
        ));
    }
    let kinds: Vec<&str> = seen.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["ADDED", "MODIFIED", "DELETED"],
        "leaving the selection reads as DELETED: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, name, _)| name == "w"),
        "the pod outside the selector is not sent"
    );
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "versions rise");
    assert_eq!(
        bookmark,
        Some(cluster.state.resource_version()),
        "a bookmark carries the newest version"
    );

    tracing::info!("phase: after a compaction a watch from an old version gets ERROR 410 Expired");
    cluster.state.compact();
    let response = client
        .get(format!("{base}?watch=1&resourceVersion={start}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let mut events = common::LineReader::new(response);
    let error = events.next(Duration::from_secs(5)).await.expect("an error event");
    assert_eq!(error["type"], "ERROR");
    assert_eq!(
        (error["object"]["code"].as_u64(), error["object"]["reason"].as_str()),
        (Some(410), Some("Expired"))
    );
    assert!(
        events.next(Duration::from_secs(5)).await.is_none(),
        "the stream ends after the error"
    );

    tracing::info!("phase: a watch without a version starts with the current objects");
    let response = client
        .get(format!("{base}?watch=1&timeoutSeconds=1"))
        .send()
        .await
        .expect("answers");
    let mut events = common::LineReader::new(response);
    let first = events.next(Duration::from_secs(5)).await.expect("the initial state");
    assert_eq!(first["type"], "ADDED");
}

#[tokio::test]
async fn instances_share_state_and_one_can_stop_and_rejoin() {
    common::init_tracing();
    let cluster = FakeCluster::start(2).await.expect("the cluster starts");
    let client = common::admin_client(&cluster);
    let urls = cluster.urls();
    tracing::info!("phase: a pod written through instance 0 is read through instance 1");
    let created = client
        .post(format!("{}/api/v1/namespaces/default/pods", urls[0]))
        .json(&pod("shared", json!({})))
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status(), 201);
    let read = client
        .get(format!("{}/api/v1/namespaces/default/pods/shared", urls[1]))
        .send()
        .await
        .expect("answers");
    assert_eq!(read.status(), 200);

    tracing::info!("phase: stopping instance 0 ends its watch and closes its port; instance 1 serves");
    let version = cluster.state.resource_version();
    let watch = client
        .get(format!(
            "{}/api/v1/namespaces/default/pods?watch=1&resourceVersion={version}",
            urls[0]
        ))
        .send()
        .await
        .expect("the watch starts");
    let mut events = common::LineReader::new(watch);
    let stopped_at = Instant::now();
    cluster.servers[0].stop().await;
    assert!(
        events.next(Duration::from_secs(2)).await.is_none(),
        "the open watch ended"
    );
    println!("instance stopped and its watch ended in {:?}", stopped_at.elapsed());
    let fresh = common::admin_client(&cluster);
    assert!(
        fresh.get(format!("{}/version", urls[0])).send().await.is_err(),
        "the stopped port refuses"
    );
    cluster
        .state
        .create_object(pod("while-stopped", json!({})))
        .expect("created");
    let listed: Value = fresh
        .get(format!("{}/api/v1/pods", urls[1]))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));

    tracing::info!("phase: the restarted instance serves on the same port and sees what changed");
    cluster.servers[0].restart().await.expect("restarts");
    assert_eq!(cluster.servers[0].url(), urls[0]);
    let read = fresh
        .get(format!("{}/api/v1/namespaces/default/pods/while-stopped", urls[0]))
        .send()
        .await
        .expect("answers");
    assert_eq!(read.status(), 200);

    tracing::info!("phase: readiness, injected failures and latency are per instance");
    cluster.servers[1].set_ready(false);
    assert_eq!(
        fresh
            .get(format!("{}/readyz", urls[1]))
            .send()
            .await
            .expect("answers")
            .status(),
        500
    );
    assert_eq!(
        fresh
            .get(format!("{}/readyz", urls[0]))
            .send()
            .await
            .expect("answers")
            .status(),
        200
    );
    cluster.servers[1].set_ready(true);
    cluster.servers[1].fail_requests(Some(503));
    assert_eq!(
        fresh
            .get(format!("{}/api/v1/pods", urls[1]))
            .send()
            .await
            .expect("answers")
            .status(),
        503
    );
    assert_eq!(
        fresh
            .get(format!("{}/livez", urls[1]))
            .send()
            .await
            .expect("answers")
            .status(),
        200
    );
    cluster.servers[1].fail_requests(None);
    cluster.servers[1].set_latency(Duration::from_millis(300));
    let timed = Instant::now();
    assert_eq!(
        fresh
            .get(format!("{}/api/v1/pods", urls[1]))
            .send()
            .await
            .expect("answers")
            .status(),
        200
    );
    assert!(timed.elapsed() >= Duration::from_millis(300));
    assert!(cluster.servers[1].request_count() > 0);
}
