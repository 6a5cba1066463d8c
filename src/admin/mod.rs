//! `kuboard admin …`: operator tools that run beside (or instead of) the replicas.
//!
//! # Layout
//!
//! - [`snapshot_file`]: the snapshot file format (versioned, checksummed) and its atomic write.
//! - [`snapshot_store`]: taking a consistent snapshot of any store, restoring into an empty one.
//! - [`snapshot_http`]: `GET /kuboard-api/system/snapshot`, served by every replica for admins.
//! - `snapshot_command`: `kuboard admin snapshot save|restore` for both backends.
//! - [`members_http`]: `/kuboard-api/system/members`, listing and changing the members of the
//!   embedded Raft group on any replica.
//! - `members_command`: `kuboard admin members list|add|remove|replace`, through that API.
//! - `reset_password_command`: `kuboard admin reset-password USER`, through a replica or offline.
//! - [`member_spec`]: member ids and peer addresses as operators write them (`4=10.0.0.4:10082`).
//! - [`admin_client`]: the authenticated HTTP client of a running replica and the exit codes that
//!   every command shares.
//!
//! Architecture Invariant: snapshots go through the `Store` contract only, so the embedded store and
//! an external etcd are saved and restored with one meaning.
//!
//! Architecture Invariant: membership changes are performed by the store on the leader; the
//! commands hold no state and may ask any replica.

pub mod admin_client;
pub mod member_spec;
mod members_command;
pub mod members_http;
mod reset_password_command;
pub mod snapshot_command;
pub mod snapshot_file;
pub mod snapshot_http;
pub mod snapshot_store;

use clap::ArgMatches;

use crate::cli::{AdminArgs, AdminCommand, MembersCommand, RawSettings, SnapshotCommand};

/// Exit codes of `kuboard admin`: as `serve`, 2 means the settings or arguments are at fault.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Runs one admin command; returns the process exit code.
pub fn run(args: AdminArgs, admin_matches: &ArgMatches) -> u8 {
    match args.command {
        AdminCommand::Snapshot(command) => {
            let snapshot_matches = admin_matches
                .subcommand_matches("snapshot")
                .expect("clap matched the snapshot subcommand");
            match command {
                SnapshotCommand::Save(save) => {
                    let leaf = snapshot_matches
                        .subcommand_matches("save")
                        .expect("clap matched the save subcommand");
                    snapshot_command::save(*save, &RawSettings::from_serve_matches(leaf))
                }
                SnapshotCommand::Restore(restore) => {
                    let leaf = snapshot_matches
                        .subcommand_matches("restore")
                        .expect("clap matched the restore subcommand");
                    snapshot_command::restore(*restore, &RawSettings::from_serve_matches(leaf))
                }
            }
        }
        AdminCommand::ResetPassword(args) => {
            let leaf = admin_matches
                .subcommand_matches("reset-password")
                .expect("clap matched the reset-password subcommand");
            reset_password_command::reset_password(*args, &RawSettings::from_serve_matches(leaf))
        }
        AdminCommand::Members(command) => match command {
            MembersCommand::List(args) => members_command::list(args),
            MembersCommand::Add(args) => members_command::add(args),
            MembersCommand::Remove(args) => members_command::remove(args),
            MembersCommand::Replace(args) => members_command::replace(args),
        },
    }
}
