//! Who a request is (client certificate or bearer token, then impersonation) and what it may do (a simple
//! RBAC emulation: rules naming users or groups, verbs, resources and namespaces).

use http::HeaderMap;

use crate::status::ApiError;

/// An authenticated identity, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn new(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// Adds `system:authenticated`, as the apiserver does for every authenticated user.
    pub(crate) fn authenticated(mut self) -> UserInfo {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".to_string());
        }
        self
    }
}

/// One grant. Empty `users` and `groups` match nobody; `"*"` in `verbs`, `resources` or `namespaces`
/// matches everything; empty `namespaces` means every namespace and the cluster scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `impersonate`.
    pub verbs: Vec<String>,
    /// Plural names, with subresources as `pods/log`, `pods/exec`; `users` and `groups` for impersonation.
    pub resources: Vec<String>,
    pub namespaces: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl PolicyRule {
    /// Everything for members of `group` (what `cluster-admin` bound to a group grants).
    pub fn admin_group(group: &str) -> PolicyRule {
        PolicyRule {
            users: vec![],
            groups: vec![group.to_string()],
            verbs: strings(&["*"]),
            resources: strings(&["*"]),
            namespaces: vec![],
        }
    }

    /// Everything for `user`.
    pub fn admin_user(user: &str) -> PolicyRule {
        PolicyRule {
            users: vec![user.to_string()],
            groups: vec![],
            ..PolicyRule::admin_group("")
        }
    }

    /// Read-only access (get, list, watch on every resource, pod logs included) for members of `group`.
    pub fn viewer_group(group: &str) -> PolicyRule {
        PolicyRule {
            users: vec![],
            groups: vec![group.to_string()],
            verbs: strings(&["get", "list", "watch"]),
            resources: strings(&["*"]),
            namespaces: vec![],
        }
    }

    fn applies_to(&self, user: &UserInfo) -> bool {
        self.users.contains(&user.name) || self.groups.iter().any(|g| user.groups.contains(g))
    }

    fn allows(&self, request: &RequestAttributes) -> bool {
        let any = |list: &[String], wanted: &str| list.iter().any(|item| item == "*" || item == wanted);
        any(&self.verbs, &request.verb)
            && any(&self.resources, &request.resource)
            && (self.namespaces.is_empty() || request.namespace.as_deref().is_some_and(|ns| any(&self.namespaces, ns)))
    }
}

/// The rules of the cluster; by default members of `system:masters` may do everything and nobody else
/// anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rbac {
    pub rules: Vec<PolicyRule>,
}

impl Default for Rbac {
    fn default() -> Rbac {
        Rbac {
            rules: vec![PolicyRule::admin_group("system:masters")],
        }
    }
}

/// What a request does, for authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAttributes {
    pub verb: String,
    /// Plural, with `/subresource` when there is one.
    pub resource: String,
    pub api_group: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Rbac {
    pub fn allows(&self, user: &UserInfo, request: &RequestAttributes) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.applies_to(user) && rule.allows(request))
    }

    /// `Ok` if allowed, else the apiserver's `403 Forbidden` Status.
    pub fn authorize(&self, user: &UserInfo, request: &RequestAttributes) -> Result<(), ApiError> {
        if self.allows(user, request) {
            return Ok(());
        }
        let (plural, subresource) = match request.resource.split_once('/') {
            Some((plural, subresource)) => (plural, Some(subresource)),
            None => (request.resource.as_str(), None),
        };
        let qualified = if request.api_group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{}", request.api_group)
        };
        let subject = match &request.name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified.clone(),
        };
        let scope = match &request.namespace {
            Some(namespace) => format!("in the namespace \"{namespace}\""),
            None => "at the cluster scope".to_string(),
        };
        let resource_text = match subresource {
            Some(subresource) => format!("resource \"{plural}/{subresource}\""),
            None => format!("resource \"{plural}\""),
        };
        let mut error = ApiError::new(
            403,
            "Forbidden",
            format!(
                "{subject} is forbidden: User \"{}\" cannot {} {resource_text} in API group \"{}\" {scope}",
                user.name, request.verb, request.api_group
            ),
        );
        error.details = Some(serde_json::json!({
            "name": request.name.clone().unwrap_or_default(), "group": request.api_group, "kind": plural
        }));
        Err(error)
    }

    /// Applies `Impersonate-User` / `Impersonate-Group` headers: the caller must be allowed to impersonate
    /// the user and each group. Returns the identity the request acts as.
    pub fn impersonate(&self, caller: UserInfo, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
        let user = headers
            .get("impersonate-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let groups: Vec<String> = headers
            .get_all("impersonate-group")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let Some(user) = user else {
            if groups.is_empty() {
                return Ok(caller);
            }
            return Err(ApiError::new(
                500,
                "InternalError",
                "requested [Impersonate-Group] without impersonating a user",
            ));
        };
        let check = |resource: &str, name: &str| {
            self.authorize(
                &caller,
                &RequestAttributes {
                    verb: "impersonate".into(),
                    resource: resource.into(),
                    api_group: String::new(),
                    namespace: None,
                    name: Some(name.to_string()),
                },
            )
        };
        check("users", &user)?;
        for group in &groups {
            check("groups", group)?;
        }
        Ok(UserInfo { name: user, groups }.authenticated())
    }
}

/// The identity of a client certificate: CN is the user, each O a group (as Kubernetes reads it).
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = certificate.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(UserInfo { name, groups }.authenticated())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(verb: &str, resource: &str, namespace: Option<&str>) -> RequestAttributes {
        RequestAttributes {
            verb: verb.into(),
            resource: resource.into(),
            api_group: String::new(),
            namespace: namespace.map(str::to_string),
            name: Some("x".into()),
        }
    }

    #[test]
    fn viewer_reads_but_cannot_delete() {
        let rbac = Rbac {
            rules: vec![PolicyRule::viewer_group("viewers")],
        };
        let viewer = UserInfo::new("v", &["viewers"]);
        assert!(rbac.allows(&viewer, &attributes("get", "pods", Some("default"))));
        let denied = rbac
            .authorize(&viewer, &attributes("delete", "pods", Some("default")))
            .unwrap_err();
        assert_eq!(denied.code, 403);
        assert_eq!(
            denied.message,
            "pods \"x\" is forbidden: User \"v\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
        );
    }

    #[test]
    fn impersonation_needs_the_impersonate_verb() {
        let rbac = Rbac::default();
        let mut headers = HeaderMap::new();
        headers.insert("impersonate-user", "alice".parse().expect("a valid header value"));
        headers.append("impersonate-group", "viewers".parse().expect("a valid header value"));
        let admin = UserInfo::new("admin", &["system:masters"]);
        let acting = rbac.impersonate(admin, &headers).expect("masters may impersonate");
        assert_eq!(acting, UserInfo::new("alice", &["viewers", "system:authenticated"]));
        let nobody = UserInfo::new("nobody", &[]);
        assert_eq!(rbac.impersonate(nobody, &headers).map_err(|e| e.code), Err(403));
    }
}
