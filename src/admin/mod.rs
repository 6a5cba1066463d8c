//! `kuboard admin …`: operator tools that run beside (or instead of) the replicas.
//!
//! # Layout
//!
//! - `snapshot_command`: `kuboard admin snapshot save|restore` for both backends.
//! - `members_command`: `kuboard admin members list|add|remove|replace`, through the members API.
//! - `reset_password_command`: `kuboard admin reset-password USER`, through a replica or offline.
//! - [`admin_client`]: the authenticated HTTP client of a running replica and the exit codes that
//!   every command shares.
//!
//! The server's side of these commands (the members and snapshot routes, the snapshot format, the
//! member address checks) is in `crate::store_admin`; this folder holds the operator commands only.
//!
//! Architecture Invariant: the commands hold no state and may ask any replica.

pub mod admin_client;
mod members_command;
mod reset_password_command;
pub mod snapshot_command;

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
