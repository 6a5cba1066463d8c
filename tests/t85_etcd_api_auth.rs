//! etcd-style authentication on the etcd v3 API of the embedded store, driven by the real
//! `etcdctl` 3.4 against three replicas (`kuboard serve`), and by raw gRPC calls where etcdctl
//! cannot show what is checked (one token used on several replicas, stale and forged tokens).
//!
//! Before it, any local process reaching the API could write any key of the store, kuboard's
//! sessions included: the Auth service did not exist and `etcdctl user add` failed.

mod common;
mod etcdctl_support;

use std::time::Duration;

use etcd_client::proto::{PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse};
use etcdctl_support::{init_tracing, EmbeddedGroup, Etcdctl};
use tonic::transport::Channel;

const ROOT_PASSWORD: &str = "root-pass-1";

fn as_user(etcdctl: &Etcdctl, user: &str, password: &str) -> Etcdctl {
    let mut etcdctl = etcdctl.clone();
    etcdctl.extra.push(format!("--user={user}:{password}"));
    etcdctl
}

/// With auth still off: `root`, a role `app` granted readwrite on the prefix `app/`, and `user`
/// holding that role.
async fn add_root_and_app_user(etcdctl: &Etcdctl, user: &str, password: &str) {
    etcdctl
        .check(
            &["user", "add", &format!("root:{ROOT_PASSWORD}")],
            "User root created\n",
        )
        .await;
    etcdctl.check(&["role", "add", "app"], "Role app created\n").await;
    etcdctl
        .check(
            &["role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"],
            "Role app updated\n",
        )
        .await;
    etcdctl
        .check(
            &["user", "add", &format!("{user}:{password}")],
            &format!("User {user} created\n"),
        )
        .await;
    etcdctl
        .check(
            &["user", "grant-role", user, "app"],
            &format!("Role app is granted to user {user}\n"),
        )
        .await;
}

/// etcd's Authenticate messages (rpc.proto), for calling the service without etcdctl.
#[derive(Clone, PartialEq, prost::Message)]
struct AuthenticateRequest {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    password: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AuthenticateResponse {
    #[prost(string, tag = "2")]
    token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct UserAddRequest {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    password: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
struct UserListResponse {
    #[prost(string, repeated, tag = "2")]
    users: Vec<String>,
}

/// One replica's etcd API over raw gRPC, with an optional token in the metadata.
struct Raw {
    channel: Channel,
}

impl Raw {
    async fn connect(port: u16) -> Raw {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("an endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .connect()
            .await
            .unwrap_or_else(|error| panic!("connect to the etcd API on port {port}: {error}"));
        Raw { channel }
    }

    async fn call<Req, Resp>(
        &self,
        path: &'static str,
        message: Req,
        token: Option<&str>,
    ) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.expect("the channel is ready");
        let mut request = tonic::Request::new(message);
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("token", token.parse().expect("a token is ASCII"));
        }
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.unary(request, http::uri::PathAndQuery::from_static(path), codec)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn authenticate(&self, name: &str, password: &str) -> Result<String, tonic::Status> {
        let request = AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        };
        let response: AuthenticateResponse = self.call("/etcdserverpb.Auth/Authenticate", request, None).await?;
        Ok(response.token)
    }

    async fn put(&self, key: &str, value: &str, token: Option<&str>) -> Result<PbPutResponse, tonic::Status> {
        let request = PbPutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        self.call("/etcdserverpb.KV/Put", request, token).await
    }

    async fn get(&self, key: &str, token: Option<&str>) -> Result<PbRangeResponse, tonic::Status> {
        let request = PbRangeRequest {
            key: key.into(),
            ..Default::default()
        };
        self.call("/etcdserverpb.KV/Range", request, token).await
    }
}

fn assert_refused(result: Result<impl std::fmt::Debug, tonic::Status>, code: tonic::Code, message: &str) {
    match result {
        Ok(answer) => panic!("expected {code:?} {message:?}, got an answer: {answer:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(status.message(), message, "{status:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_client_without_credentials_cannot_write_once_auth_is_enabled() {
    init_tracing();
    let embedded = EmbeddedGroup::start().await;
    let etcdctl = embedded.etcdctl();
    etcdctl
        .check(
            &["user", "add", &format!("root:{ROOT_PASSWORD}")],
            "User root created\n",
        )
        .await;
    etcdctl.check(&["auth", "enable"], "Authentication Enabled\n").await;
    // A forged session is what a local process would write; it is refused and not written.
    etcdctl
        .check_error(
            &["put", "sessions/forged", "{\"user\":\"admin\"}"],
            "Error: etcdserver: user name is empty\n",
        )
        .await;
    etcdctl
        .check_error(&["get", "sessions/forged"], "Error: etcdserver: user name is empty\n")
        .await;
    let root = as_user(&etcdctl, "root", ROOT_PASSWORD);
    root.check(&["get", "sessions/forged"], "").await;
    root.check(&["put", "sessions/by-root", "v"], "OK\n").await;
    etcdctl
        .check_error(
            &["--user=root:wrong-password", "put", "sessions/forged", "x"],
            "Error: etcdserver: authentication failed, invalid user ID or password\n",
        )
        .await;
    root.check(&["get", "sessions/forged"], "").await;
    embedded.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_roles_and_tokens_hold_on_every_replica_as_in_etcd() {
    init_tracing();
    let embedded = EmbeddedGroup::start().await;
    let etcdctl = embedded.etcdctl();
    let replica = |index: usize| Etcdctl::new(vec![embedded.endpoints()[index].clone()]);

    // Before enabling: etcd's refusal without a root user, and management open to everyone.
    etcdctl
        .check_error(&["auth", "enable"], "Error: etcdserver: root user does not exist\n")
        .await;
    add_root_and_app_user(&etcdctl, "alice", "alice-pass-1").await;
    etcdctl.check(&["auth", "enable"], "Authentication Enabled\n").await;

    // Enabled: management needs root, on any replica.
    replica(1)
        .check_error(&["user", "list"], "Error: etcdserver: user name is empty\n")
        .await;
    let root = as_user(&etcdctl, "root", ROOT_PASSWORD);
    root.check(&["user", "list"], "alice\nroot\n").await;
    root.check(
        &["role", "get", "app"],
        "Role app\nKV Read:\n\t[app/, app0) (prefix app/)\nKV Write:\n\t[app/, app0) (prefix app/)\n",
    )
    .await;
    as_user(&replica(2), "alice", "alice-pass-1")
        .check_error(&["user", "list"], "Error: etcdserver: permission denied\n")
        .await;

    // alice writes under app/ and nowhere else; the reserved auth key is nobody's to write.
    let alice = as_user(&etcdctl, "alice", "alice-pass-1");
    alice.check(&["put", "app/x", "1"], "OK\n").await;
    alice.check(&["get", "app/x", "--print-value-only"], "1\n").await;
    alice
        .check_error(
            &["put", "sessions/forged", "x"],
            "Error: etcdserver: permission denied\n",
        )
        .await;
    alice
        .check_error(
            &["get", "sessions/", "--prefix"],
            "Error: etcdserver: permission denied\n",
        )
        .await;
    alice
        .check_error(&["get", "app/", "--from-key"], "Error: etcdserver: permission denied\n")
        .await;
    alice
        .check_error(&["get", "etcd-api/auth"], "Error: etcdserver: permission denied\n")
        .await;
    // A watch outside the grants is cancelled with etcd's reason; leases need a user.
    let watched = alice.run(&["watch", "sessions/", "--prefix"]).await;
    assert!(!watched.success, "the refused watch must end etcdctl: {watched:?}");
    assert!(watched.stderr.contains("etcdserver: permission denied"), "{watched:?}");
    replica(2)
        .check_error(
            &["lease", "grant", "60"],
            "Error: failed to grant lease (etcdserver: user name is empty)\n",
        )
        .await;
    let granted = alice.run(&["lease", "grant", "60"]).await;
    assert!(
        granted.success && granted.stdout.ends_with(" granted with TTL(60s)\n"),
        "{granted:?}"
    );
    root.check_error(
        &["put", "etcd-api/auth", "{}"],
        "Error: etcdserver: permission denied\n",
    )
    .await;
    root.check_error(&["del", "", "--from-key"], "Error: etcdserver: permission denied\n")
        .await;
    let txn = "mod(\"app/x\") > \"0\"\n\nput app/t 1\nput sessions/t 1\n\n\n";
    let printed = alice
        .run_with_input(&["txn"], txn, etcdctl_support::COMMAND_DEADLINE)
        .await;
    assert!(
        !printed.success,
        "a txn with one op outside alice's grants must fail: {printed:?}"
    );
    assert_eq!(printed.stderr, "Error: etcdserver: permission denied\n");
    root.check(&["get", "app/t"], "").await;

    // A token made on replica 1 is good on replicas 2 and 3.
    let raw: Vec<Raw> = futures::future::join_all(embedded.api_ports.iter().map(|port| Raw::connect(*port))).await;
    let token = raw[0]
        .authenticate("alice", "alice-pass-1")
        .await
        .expect("alice authenticates");
    raw[1]
        .put("app/from-2", "v", Some(&token))
        .await
        .expect("the token works on replica 2");
    let read = raw[2].get("app/from-2", Some(&token)).await.expect("and on replica 3");
    assert_eq!(read.kvs.len(), 1);
    assert_refused(
        raw[1].put("sessions/x", "v", Some(&token)).await,
        tonic::Code::PermissionDenied,
        "etcdserver: permission denied",
    );
    // Forged, altered and malformed tokens.
    let (body, _tag) = token.rsplit_once('.').expect("a signed token");
    for bad in [
        format!("{body}.AAAA"),
        token.replacen('.', "x.", 1),
        "not-a-token".to_string(),
        String::new(),
    ] {
        assert_refused(
            raw[1].put("app/x", "forged", Some(&bad)).await,
            tonic::Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
    }
    assert_refused(
        raw[0].authenticate("alice", "wrong").await,
        tonic::Code::InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password",
    );
    assert_refused(
        raw[0].authenticate("nobody", "x").await,
        tonic::Code::InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password",
    );
    alice.check(&["get", "app/x", "--print-value-only"], "1\n").await;

    // A changed password ends the old token and the old password (etcd's auth revision).
    let changed = root
        .run_with_input(
            &["user", "passwd", "alice", "--interactive=false"],
            "alice-pass-2\n",
            etcdctl_support::COMMAND_DEADLINE,
        )
        .await;
    assert!(changed.success, "{changed:?}");
    assert_eq!(changed.stdout, "Password updated\n");
    // Checked on another replica than the one that made the change, at once: a change holds on
    // every replica from its acknowledgement.
    assert_refused(
        raw[1].put("app/x", "stale", Some(&token)).await,
        tonic::Code::InvalidArgument,
        "etcdserver: revision of auth store is old",
    );
    alice
        .check_error(
            &["put", "app/x", "2"],
            "Error: etcdserver: authentication failed, invalid user ID or password\n",
        )
        .await;
    let alice = as_user(&etcdctl, "alice", "alice-pass-2");
    alice.check(&["put", "app/x", "2"], "OK\n").await;

    // A revoked role ends the token made before and the access it gave.
    let token = raw[2]
        .authenticate("alice", "alice-pass-2")
        .await
        .expect("alice authenticates again");
    raw[0]
        .put("app/y", "v", Some(&token))
        .await
        .expect("the new token works");
    root.check(
        &["user", "revoke-role", "alice", "app"],
        "Role app is revoked from user alice\n",
    )
    .await;
    assert_refused(
        raw[0].put("app/y", "stale", Some(&token)).await,
        tonic::Code::InvalidArgument,
        "etcdserver: revision of auth store is old",
    );
    alice
        .check_error(&["put", "app/x", "3"], "Error: etcdserver: permission denied\n")
        .await;

    // Bad input changes nothing.
    let root_token = raw[0]
        .authenticate("root", ROOT_PASSWORD)
        .await
        .expect("root authenticates");
    for (name, message) in [
        ("", "etcdserver: user name is empty"),
        (
            &"u".repeat(10_000)[..],
            "etcdserver: user name is longer than 256 bytes",
        ),
    ] {
        let request = UserAddRequest {
            name: name.to_string(),
            password: "p".into(),
        };
        assert_refused(
            raw[0]
                .call::<_, Empty>("/etcdserverpb.Auth/UserAdd", request, Some(&root_token))
                .await,
            tonic::Code::InvalidArgument,
            message,
        );
    }
    let users: UserListResponse = raw[0]
        .call("/etcdserverpb.Auth/UserList", Empty {}, Some(&root_token))
        .await
        .expect("root lists the users");
    assert_eq!(users.users, ["alice", "root"]);
    root.check_error(
        &["role", "grant-permission", "missing", "read", "k"],
        "Error: etcdserver: role name not found\n",
    )
    .await;
    root.check_error(
        &["user", "delete", "root"],
        "Error: etcdserver: invalid auth management\n",
    )
    .await;

    // Disabled again: the API is open as before.
    root.check(&["auth", "disable"], "Authentication Disabled\n").await;
    etcdctl.check(&["put", "sessions/open", "v"], "OK\n").await;
    replica(2)
        .check(&["get", "sessions/open", "--print-value-only"], "v\n")
        .await;
    embedded.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_names_the_user_when_no_token_is_sent() {
    init_tracing();
    let files = tempfile::tempdir().expect("tempdir");
    let pki = common::make_test_pki(files.path());
    let path = |file: &std::path::Path| file.display().to_string();
    let port = common::free_port();
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let (cert, key, ca, port_text) = (
        path(&pki.server_cert),
        path(&pki.server_key),
        path(&pki.ca),
        port.to_string(),
    );
    let mut replica = common::Replica::start_with(
        &data.path().join("data"),
        logs.path(),
        &[
            ("KUBOARD_ETCD_API_PORT", port_text.as_str()),
            ("KUBOARD_ETCD_API_CERT", cert.as_str()),
            ("KUBOARD_ETCD_API_KEY", key.as_str()),
            ("KUBOARD_ETCD_API_CLIENT_CA", ca.as_str()),
            // Failed authentications are logged at debug level, every crate's debug lines
            // included: the log is checked for passwords.
            ("KUBOARD_SERVER_LOGRUS_LEVEL", "debug"),
        ],
    );
    replica.wait_ready_within(etcdctl_support::START_DEADLINE).await;
    // The test PKI's client certificate has the common name `kuboard-client`.
    let mut client = Etcdctl::new(vec![format!("https://127.0.0.1:{port}")]);
    client.extra = vec![
        format!("--cacert={ca}"),
        format!("--cert={}", path(&pki.client_cert)),
        format!("--key={}", path(&pki.client_key)),
    ];
    add_root_and_app_user(&client, "kuboard-client", "client-pass-1").await;
    client.check(&["auth", "enable"], "Authentication Enabled\n").await;

    // No --user: the certificate's common name is the user, with its roles and nothing more.
    client.check(&["put", "app/x", "1"], "OK\n").await;
    client
        .check_error(
            &["put", "sessions/forged", "x"],
            "Error: etcdserver: permission denied\n",
        )
        .await;
    client
        .check_error(&["user", "list"], "Error: etcdserver: permission denied\n")
        .await;
    // A token wins over the certificate.
    let root = as_user(&client, "root", ROOT_PASSWORD);
    root.check(&["put", "sessions/by-root", "v"], "OK\n").await;
    // Without the role, and once the user is gone, the certificate gets nothing.
    root.check(
        &["user", "revoke-role", "kuboard-client", "app"],
        "Role app is revoked from user kuboard-client\n",
    )
    .await;
    client
        .check_error(&["put", "app/y", "1"], "Error: etcdserver: permission denied\n")
        .await;
    root.check(&["user", "delete", "kuboard-client"], "User kuboard-client deleted\n")
        .await;
    client
        .check_error(&["get", "app/x"], "Error: etcdserver: permission denied\n")
        .await;
    client
        .check_error(
            &["--user=root:wrong-pass-9", "get", "app/x"],
            "Error: etcdserver: authentication failed, invalid user ID or password\n",
        )
        .await;
    // Stopped first, so that every line is written out.
    replica.stop();
    let log = replica.log();
    assert!(
        log.contains("etcd API authentication failed"),
        "the failed authentication is logged at debug level:\n{log}"
    );
    for secret in [ROOT_PASSWORD, "client-pass-1", "wrong-pass-9"] {
        assert!(!log.contains(secret), "a password is in the log:\n{log}");
    }
}
