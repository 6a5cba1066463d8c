//! `kuboard admin reset-password USER`: sets a new password that the user must change at the next
//! login, and ends the user's sessions.
//!
//! With `--server`, through a running replica's API (`POST /kuboard-api/users/USER/password`) as
//! an administrator. Without it, offline: the store is opened directly from the settings of
//! `kuboard serve` (`KUBOARD_DATA_DIR` of a stopped single replica, or `KUBOARD_ETCD_*`), which is
//! the way back when nobody remembers an administrator's password.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use rand::RngCore;

use super::admin_client::{describe_error, exit_code, AdminClient, CommandError};
use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::app_store::AppStore;
use crate::auth::password_policy::check_new_password;
use crate::auth::{sessions, users};
use crate::cli::{RawSettings, ResetPasswordArgs};
use crate::config::{self, LogConfig, ServeConfig, StoreSelection};
use crate::metrics::Metrics;
use crate::store_backend::StoreBackend;

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an offline reset waits for the store to accept writes.
const STORE_DEADLINE: Duration = Duration::from_secs(20);

pub fn reset_password(args: ResetPasswordArgs, raw: &RawSettings) -> u8 {
    let config = match config::parse(raw, crate::hostname().as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    crate::logging::init(&LogConfig {
        filter: "warn".to_string(),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: start the async runtime: {error}");
            return EXIT_FAILURE;
        }
    };
    let outcome = runtime.block_on(run(args, config));
    runtime.shutdown_timeout(Duration::from_millis(500));
    exit_code(outcome)
}

async fn run(args: ResetPasswordArgs, config: ServeConfig) -> Result<String, CommandError> {
    if !users::is_valid_username(&args.username) {
        return Err(CommandError::Usage(format!(
            "{:?} is not a valid user name",
            args.username
        )));
    }
    let (password, generated) = match &args.new_password {
        Some(password) => (password.clone(), false),
        None => {
            let mut bytes = [0u8; 15];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            (base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes), true)
        }
    };
    check_new_password(&args.username, &password, config.auth.admin_default_password.expose())
        .map_err(|violation| CommandError::Usage(format!("--new-password: {violation}")))?;
    let ended = match &args.server {
        Some(server) => reset_through_replica(server, &args, &password).await?,
        None => reset_offline(&config, &args.username, &password).await?,
    };
    let shown = if generated {
        format!("; the new password is: {password}")
    } else {
        String::new()
    };
    Ok(format!(
        "password of {} reset ({ended} sessions ended); it must be changed at the next login{shown}",
        args.username
    ))
}

async fn reset_through_replica(server: &str, args: &ResetPasswordArgs, password: &str) -> Result<usize, CommandError> {
    let client = AdminClient::connect(
        server,
        args.token.as_deref(),
        &args.admin_username,
        args.admin_password.as_deref(),
        HTTP_TIMEOUT,
    )
    .await?;
    let path = format!("/kuboard-api/users/{}/password", args.username);
    let outcome = async {
        let response = client
            .request(reqwest::Method::POST, &path)
            .json(&serde_json::json!({ "password": password }))
            .send()
            .await
            .with_context(|| format!("ask {} to reset the password", client.base))?;
        if !response.status().is_success() {
            anyhow::bail!("{} refused: {}", client.base, describe_error(response).await);
        }
        let body: serde_json::Value = response.json().await.context("read the answer")?;
        Ok(body["sessions_ended"].as_u64().unwrap_or(0) as usize)
    }
    .await;
    client.finish().await;
    Ok(outcome?)
}

async fn reset_offline(config: &ServeConfig, username: &str, password: &str) -> Result<usize, CommandError> {
    if let StoreSelection::Raft(raft) = &config.store {
        if raft.peers.len() > 1 {
            return Err(CommandError::Usage(
                "a member of a multi-replica group cannot write alone: reset through a running replica with --server"
                    .to_string(),
            ));
        }
    }
    let backend = Arc::new(
        StoreBackend::open(&config.store, &config.data_dir)
            .await
            .map_err(|error| {
                CommandError::Failed(anyhow::anyhow!(
                    "open the store in {} ({error}); if a replica runs on it, use --server instead",
                    config.data_dir.display()
                ))
            })?,
    );
    let store = AppStore::new(backend.clone(), Arc::new(Metrics::new(0)));
    let outcome = reset_in_store(&store, username, password).await;
    if let Err(error) = backend.shutdown().await {
        tracing::warn!(%error, "closing the store failed");
    }
    outcome
}

async fn reset_in_store(store: &AppStore, username: &str, password: &str) -> Result<usize, CommandError> {
    let started = Instant::now();
    let user = loop {
        match users::get_user(store, username).await {
            Ok(Some(user)) => break user,
            Ok(None) => return Err(CommandError::Failed(anyhow::anyhow!("there is no user {username}"))),
            Err(users::UserError::Store(_)) if started.elapsed() < STORE_DEADLINE => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(CommandError::Failed(anyhow::anyhow!("read user {username}: {error}"))),
        }
    };
    let record = users::UserRecord {
        password_hash: users::hash_password_blocking(password.to_string())
            .await
            .map_err(|error| CommandError::Failed(anyhow::anyhow!("{error}")))?,
        must_change_password: true,
        disabled: false,
        updated_at: crate::clock::Clock::system().now_unix(),
        ..user.record.clone()
    };
    let replaced = users::replace_user(store, &user, &record)
        .await
        .map_err(|error| CommandError::Failed(anyhow::anyhow!("write user {username}: {error}")))?;
    if !replaced {
        return Err(CommandError::Failed(anyhow::anyhow!(
            "user {username} changed meanwhile; run the command again"
        )));
    }
    sessions::delete_other_sessions(store, username, "")
        .await
        .map_err(|error| CommandError::Failed(anyhow::anyhow!("end the sessions of {username}: {error}")))
}
