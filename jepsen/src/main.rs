//! `kuboard-jepsen`: runs a chaos test against the embedded group or a real etcd, or removes what a
//! killed run left behind.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kuboard-jepsen", about = "The chaos/partition suite of kuboard")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Remove network namespaces, links and host iptables rules of the suite (names starting with `kjp`)
    /// and kill the processes left inside those namespaces.
    Cleanup,
    /// Echo TCP connections (used by the network tests inside a namespace).
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 100)]
        max_connections: usize,
    },
    /// Probe an echo server; exit 0 when it echoes (used by the network tests inside a namespace).
    #[command(hide = true)]
    EchoProbe {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cleanup => cleanup(),
        Command::EchoServer {
            listen,
            max_connections,
        } => kuboard_jepsen::echo::serve(listen, max_connections),
        Command::EchoProbe { target, timeout_ms } => {
            kuboard_jepsen::echo::probe(target, Duration::from_millis(timeout_ms))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kuboard-jepsen: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn cleanup() -> anyhow::Result<()> {
    let cleaned = kuboard_jepsen::net::cleanup()?;
    println!(
        "removed {} namespaces, {} links, {} host FORWARD rules; killed {} processes",
        cleaned.namespaces.len(),
        cleaned.links.len(),
        cleaned.forward_rules,
        cleaned.killed_processes.len()
    );
    Ok(())
}
