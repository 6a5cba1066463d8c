//! Kuboard: a highly available Kubernetes multi-cluster dashboard.
//!
//! # Layout
//!
//! - [`cli`]: subcommands and flags; [`config`]: typed, validated settings.
//! - [`server`]: `kuboard serve`, the composition root of a replica; [`store_backend`]: the closed
//!   set of store backends; [`app_store`]: the metered store client the handlers use.
//! - [`admin`]: `kuboard admin …`, operator tools (store snapshots).
//! - [`agent`]: `kuboard agent` (the tunnel from a cluster the replicas cannot reach) and the
//!   replica's agent server.
//! - [`etcd_api`]: the etcd v3 gRPC API of the embedded store (`KUBOARD_ETCD_API_PORT`).
//! - [`console`]: the web console (`web/`), embedded and served next to the API.
//! - [`http`]: the REST API, health and metrics endpoints; [`auth`]: users and sessions in the store.
//! - [`clusters`]: the cluster registry, credentials encrypted at rest.
//! - [`kube`]: Kubernetes access: cluster import, the per-cluster apiserver balancer, the
//!   `/k8s-api/` proxy and per-user kubeconfigs.
//! - [`audit`]: audit events and the sink they go to.
//! - [`singleton`]: store-based leader election for background work one replica does at a time.
//! - [`metrics`], [`logging`], [`clock`], [`version`]: process plumbing.

mod admin;
mod agent;
mod allocator;
mod api;
mod app_store;
mod audit;
mod auth;
mod auto_compaction;
mod cli;
mod clock;
mod clusters;
mod config;
mod console;
mod etcd_api;
#[cfg(test)]
mod fuzz_tests;
mod http;
mod kube;
mod logging;
#[cfg(test)]
mod memory_store;
mod metrics;
#[cfg(test)]
mod one_member_store;
mod server;
mod singleton;
mod store_admin;
mod store_backend;
mod tls;
mod tunnel;
mod version;

use std::process::ExitCode;
use std::time::Duration;

use cli::{Command, RawSettings};

fn main() -> ExitCode {
    let (cli, matches) = cli::parse();
    match cli.command {
        Command::Version(args) => {
            println!("{}", version::describe(args.json));
            ExitCode::SUCCESS
        }
        Command::Serve(_) => {
            let serve_matches = matches
                .subcommand_matches("serve")
                .expect("clap matched the serve subcommand");
            ExitCode::from(run_serve(&RawSettings::from_serve_matches(serve_matches)))
        }
        Command::Agent(args) => ExitCode::from(agent::agent_main::run(args)),
        Command::Admin(args) => {
            let admin_matches = matches
                .subcommand_matches("admin")
                .expect("clap matched the admin subcommand");
            ExitCode::from(admin::run(args, admin_matches))
        }
    }
}

fn run_serve(raw: &RawSettings) -> u8 {
    let hostname = hostname();
    let config = match config::parse(raw, hostname.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return server::EXIT_CONFIG;
        }
    };
    let data_dir_label = raw
        .get("KUBOARD_DATA_DIR")
        .map_or("KUBOARD_DATA_DIR", |raw| raw.label.as_str());
    if let Err(error) = config::check_data_dir(data_dir_label, &config.data_dir) {
        eprintln!("error: {error}");
        return server::EXIT_CONFIG;
    }
    logging::init(&config.log);
    allocator::return_large_blocks_to_the_os();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: start the async runtime: {error}");
            return server::EXIT_FAILURE;
        }
    };
    let exit_code = runtime.block_on(server::serve(config));
    // Blocking tasks (a password hash) must not hold the exit past the shutdown deadline.
    runtime.shutdown_timeout(Duration::from_millis(200));
    exit_code
}

/// This machine's host name: `HOSTNAME` as Kubernetes sets it, else the kernel's.
fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_string())
}
