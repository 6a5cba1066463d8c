//! Global roles, per-cluster role bindings, and the pure function that turns them into the
//! Kubernetes identity a user is impersonated as on one cluster.
//!
//! The identity is what the cluster's own RBAC sees (`Impersonate-User` / `Impersonate-Group`):
//!
//! - user `kuboard:<name>`;
//! - `kuboard:administrators` for a global administrator (bind it to `cluster-admin`), and
//!   `kuboard:viewers` for everybody else (bind it to `view`);
//! - `kuboard:cluster:<role>` for every binding of the user (or of one of their groups) to the
//!   whole cluster, `kuboard:namespace:<role>` for a binding to the namespace the request is in
//!   (bind these in the cluster to the ClusterRoles `admin`, `edit` and `view`);
//! - `kuboard:group:<group>` for each of the user's groups, so clusters may bind them directly.

use serde::{Deserialize, Serialize};

/// The role a user holds in Kuboard itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GlobalRole {
    /// Manages users, clusters and bindings; reaches every cluster as `kuboard:administrators`.
    Administrator,
    /// Reads what bindings allow; reaches clusters as `kuboard:viewers` plus its bindings.
    #[default]
    Viewer,
}

/// The role a binding grants on a cluster or one of its namespaces, named after the Kubernetes
/// default ClusterRoles it is meant to be bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRole {
    Admin,
    Edit,
    View,
}

impl ClusterRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterRole::Admin => "admin",
            ClusterRole::Edit => "edit",
            ClusterRole::View => "view",
        }
    }
}

/// Who a binding applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Subject {
    User(String),
    Group(String),
}

/// Grants `role` to `subject` on `cluster` (`*` for every cluster), on the whole cluster or, with
/// `namespace`, on that namespace only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleBinding {
    pub id: String,
    pub subject: Subject,
    pub cluster: String,
    pub namespace: Option<String>,
    pub role: ClusterRole,
    pub created_at: u64,
}

/// What [`kubernetes_identity`] needs to know about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView<'a> {
    pub username: &'a str,
    pub role: GlobalRole,
    pub groups: &'a [String],
    pub disabled: bool,
}

/// The Kubernetes identity of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `Impersonate-User`.
    pub user: String,
    /// `Impersonate-Group`, sorted and without duplicates.
    pub groups: Vec<String>,
}

pub const ADMINISTRATORS_GROUP: &str = "kuboard:administrators";
pub const VIEWERS_GROUP: &str = "kuboard:viewers";

/// The identity `user` reaches `cluster` with for a request in `namespace` (`None` for
/// cluster-scoped requests), or `None` when the user may not reach Kubernetes at all (disabled).
pub fn kubernetes_identity(
    user: &UserView<'_>,
    bindings: &[RoleBinding],
    cluster: &str,
    namespace: Option<&str>,
) -> Option<Identity> {
    if user.disabled {
        return None;
    }
    let mut groups = vec![match user.role {
        GlobalRole::Administrator => ADMINISTRATORS_GROUP.to_string(),
        GlobalRole::Viewer => VIEWERS_GROUP.to_string(),
    }];
    for binding in bindings {
        let applies_to_user = match &binding.subject {
            Subject::User(name) => name == user.username,
            Subject::Group(group) => user.groups.iter().any(|own| own == group),
        };
        if !applies_to_user || (binding.cluster != cluster && binding.cluster != "*") {
            continue;
        }
        match (&binding.namespace, namespace) {
            (None, _) => groups.push(format!("kuboard:cluster:{}", binding.role.as_str())),
            (Some(bound), Some(requested)) if bound == requested => {
                groups.push(format!("kuboard:namespace:{}", binding.role.as_str()))
            }
            _ => {}
        }
    }
    groups.extend(user.groups.iter().map(|group| format!("kuboard:group:{group}")));
    groups.sort();
    groups.dedup();
    Some(Identity {
        user: format!("kuboard:{}", user.username),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(subject: Subject, cluster: &str, namespace: Option<&str>, role: ClusterRole) -> RoleBinding {
        RoleBinding {
            id: "b".into(),
            subject,
            cluster: cluster.into(),
            namespace: namespace.map(str::to_string),
            role,
            created_at: 0,
        }
    }

    fn check(
        role: GlobalRole,
        groups: &[&str],
        disabled: bool,
        cluster: &str,
        namespace: Option<&str>,
        expected: Option<&[&str]>,
    ) {
        let bindings = vec![
            binding(Subject::User("alice".into()), "prod", None, ClusterRole::View),
            binding(Subject::User("alice".into()), "prod", Some("shop"), ClusterRole::Edit),
            binding(Subject::Group("ops".into()), "*", None, ClusterRole::Admin),
            binding(Subject::Group("dev".into()), "test", Some("shop"), ClusterRole::Admin),
            binding(Subject::User("bob".into()), "prod", None, ClusterRole::Admin),
        ];
        let groups: Vec<String> = groups.iter().map(|group| group.to_string()).collect();
        let user = UserView {
            username: "alice",
            role,
            groups: &groups,
            disabled,
        };
        let identity = kubernetes_identity(&user, &bindings, cluster, namespace);
        let expected = expected.map(|groups| Identity {
            user: "kuboard:alice".into(),
            groups: groups.iter().map(|group| group.to_string()).collect(),
        });
        assert_eq!(identity, expected, "{role:?} {groups:?} {cluster} {namespace:?}");
    }

    #[test]
    fn identities() {
        use GlobalRole::*;
        // A viewer without bindings on this cluster is a plain viewer.
        check(Viewer, &[], false, "test", None, Some(&["kuboard:viewers"]));
        // Cluster-wide bindings apply everywhere in the cluster; namespaced ones only in their namespace.
        check(
            Viewer,
            &[],
            false,
            "prod",
            None,
            Some(&["kuboard:cluster:view", "kuboard:viewers"]),
        );
        check(
            Viewer,
            &[],
            false,
            "prod",
            Some("shop"),
            Some(&["kuboard:cluster:view", "kuboard:namespace:edit", "kuboard:viewers"]),
        );
        check(
            Viewer,
            &[],
            false,
            "prod",
            Some("other"),
            Some(&["kuboard:cluster:view", "kuboard:viewers"]),
        );
        // Group bindings, also through the `*` cluster; the user's groups are passed on.
        check(
            Viewer,
            &["ops"],
            false,
            "test",
            None,
            Some(&["kuboard:cluster:admin", "kuboard:group:ops", "kuboard:viewers"]),
        );
        check(
            Viewer,
            &["dev"],
            false,
            "test",
            Some("shop"),
            Some(&["kuboard:group:dev", "kuboard:namespace:admin", "kuboard:viewers"]),
        );
        check(
            Viewer,
            &["dev"],
            false,
            "prod",
            Some("kube-system"),
            Some(&["kuboard:cluster:view", "kuboard:group:dev", "kuboard:viewers"]),
        );
        // Administrators are administrators everywhere.
        check(
            Administrator,
            &[],
            false,
            "test",
            None,
            Some(&["kuboard:administrators"]),
        );
        // Another user's binding never applies; a disabled user reaches nothing.
        check(
            Viewer,
            &[],
            false,
            "prod",
            Some("x"),
            Some(&["kuboard:cluster:view", "kuboard:viewers"]),
        );
        check(Administrator, &["ops"], true, "prod", None, None);
    }
}
