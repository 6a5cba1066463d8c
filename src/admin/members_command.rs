//! `kuboard admin members list|add|remove|replace`: the members of the embedded Raft group, read
//! and changed through a running replica's REST API (`/kuboard-api/system/members`). Any replica
//! will do: the store performs changes on the leader.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;

use super::admin_client::{describe_error, run_command, AdminClient, CommandError};
use crate::cli::{MemberChangeArgs, MemberRemoveArgs, MembersListArgs, ServerArgs};
use crate::store_admin::member_spec::{parse_member_id, parse_member_spec};
use crate::store_admin::members_routes::{MembersView, MEMBERS_PATH};

/// Bound on a list.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a change: the store gives an added member up to two minutes to catch up (a snapshot
/// transfer), and the answer needs a moment more.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(150);

pub fn list(args: MembersListArgs) -> u8 {
    run_command(async move {
        let view = call(&args.server, Method::GET, MEMBERS_PATH.to_string(), None, LIST_TIMEOUT).await?;
        if args.json {
            return serde_json::to_string_pretty(&view)
                .context("print the members as JSON")
                .map_err(CommandError::from);
        }
        Ok(render(&view))
    })
}

pub fn add(args: MemberChangeArgs) -> u8 {
    run_command(async move {
        let spec = parse_member_spec(&args.member).map_err(CommandError::Usage)?;
        let body = serde_json::json!({ "id": spec.id, "address": spec.address });
        let view = call(
            &args.server,
            Method::POST,
            MEMBERS_PATH.to_string(),
            Some(body),
            CHANGE_TIMEOUT,
        )
        .await?;
        Ok(format!(
            "member {} at {} is a voting member now\n{}",
            spec.id,
            spec.address,
            render(&view)
        ))
    })
}

pub fn remove(args: MemberRemoveArgs) -> u8 {
    run_command(async move {
        let id = parse_member_id(&args.id).map_err(CommandError::Usage)?;
        let path = format!("{MEMBERS_PATH}/{id}");
        let view = call(&args.server, Method::DELETE, path, None, CHANGE_TIMEOUT).await?;
        Ok(format!(
            "member {id} was removed; stop its replica (or wipe its data dir before it joins again)\n{}",
            render(&view)
        ))
    })
}

pub fn replace(args: MemberChangeArgs) -> u8 {
    run_command(async move {
        let spec = parse_member_spec(&args.member).map_err(CommandError::Usage)?;
        let path = format!("{MEMBERS_PATH}/{}", spec.id);
        let body = serde_json::json!({ "address": spec.address });
        let view = call(&args.server, Method::PUT, path, Some(body), CHANGE_TIMEOUT).await?;
        Ok(format!(
            "member {} was replaced by a fresh member at {}, which has caught up and votes\n{}",
            spec.id,
            spec.address,
            render(&view)
        ))
    })
}

/// One request to the members API; the answer is the membership after it.
async fn call(
    server: &ServerArgs,
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    timeout: Duration,
) -> Result<MembersView, CommandError> {
    let client = AdminClient::connect(
        &server.server,
        server.token.as_deref(),
        &server.username,
        server.password.as_deref(),
        timeout,
    )
    .await?;
    let base = client.base.clone();
    let answer = async {
        let mut request = client.request(method, &path);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("send the request to {base}"))?;
        if !response.status().is_success() {
            anyhow::bail!("{base} refused: {}", describe_error(response).await);
        }
        response
            .json::<MembersView>()
            .await
            .with_context(|| format!("read the member list {base} answered"))
    }
    .await;
    client.finish().await;
    Ok(answer?)
}

/// The members as a table, and who saw them.
fn render(view: &MembersView) -> String {
    let rows: Vec<[String; 4]> = view
        .members
        .iter()
        .map(|member| {
            let first_hand =
                view.health_seen_by_leader || member.id == view.replica_id || Some(member.id) == view.leader;
            let health = match (member.healthy, first_hand) {
                (true, _) => "yes",
                (false, true) => "no",
                (false, false) => "unknown",
            };
            [
                member.id.to_string(),
                member.address.clone(),
                member.role.clone(),
                health.to_string(),
            ]
        })
        .collect();
    let header = ["ID", "ADDRESS", "ROLE", "HEALTHY"];
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut table = String::new();
    for row in std::iter::once(header.map(str::to_string)).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(table, "{}", line.join("  ").trim_end());
    }
    let leader = view
        .leader
        .map_or_else(|| "none known".to_string(), |leader| leader.to_string());
    let _ = write!(
        table,
        "{} members ({} backend), leader: {leader}; answered by replica {}",
        view.members.len(),
        view.backend,
        view.replica_id
    );
    if !view.health_seen_by_leader && view.backend == "raft" {
        table.push_str(" (a follower: it cannot tell whether the other followers are alive)");
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store_admin::members_routes::MemberView;

    fn member(id: u64, role: &str, healthy: bool) -> MemberView {
        MemberView {
            id,
            address: format!("10.0.0.{id}:10082"),
            role: role.to_string(),
            healthy,
            health_known: true,
            term: None,
            commit_index: None,
            applied_index: None,
            revision: None,
            matched_index: None,
        }
    }

    #[test]
    fn the_table_says_what_a_follower_cannot_know() {
        let view = MembersView {
            replica_id: 2,
            backend: "raft".into(),
            leader: Some(1),
            health_seen_by_leader: false,
            members: vec![
                member(1, "leader", true),
                member(2, "follower", true),
                member(3, "follower", false),
            ],
        };
        assert_eq!(
            render(&view),
            "ID  ADDRESS         ROLE      HEALTHY\n\
             1   10.0.0.1:10082  leader    yes\n\
             2   10.0.0.2:10082  follower  yes\n\
             3   10.0.0.3:10082  follower  unknown\n\
             3 members (raft backend), leader: 1; answered by replica 2 (a follower: it cannot tell whether the \
             other followers are alive)"
        );
        let leader_view = MembersView {
            replica_id: 1,
            health_seen_by_leader: true,
            ..view
        };
        assert!(render(&leader_view).contains("3   10.0.0.3:10082  follower  no\n"));
    }
}
