//! The manifest an administrator applies in a cluster to run its agent (`kubectl apply -f`): a
//! namespace, a service account with the rights Kuboard's proxy uses (impersonating Kuboard's users
//! and groups; everything else is decided by the impersonated user's own RBAC), a secret with the
//! agent token and the group CA's certificate (public; its key never leaves the store), and a
//! Deployment of two agents that dial every replica's agent port over TLS pinned to that CA.
//!
//! Each document is built as a value and serialized, so nothing given (endpoints, image, names)
//! can break out of its field.

use serde_json::{json, Value};

pub const NAMESPACE: &str = "kuboard-agent";
pub const DEFAULT_IMAGE: &str = "eipwork/kuboard:v3";
/// Where each agent pod serves `/healthz`, `/readyz` and `/metrics`.
pub const HEALTH_PORT: u16 = 10082;

/// What a manifest is made of.
#[derive(Debug, Clone)]
pub struct ManifestParams<'a> {
    pub cluster: &'a str,
    pub token: &'a str,
    /// Every replica's agent address, `host:port`.
    pub endpoints: &'a [String],
    pub image: &'a str,
    /// The group CA's certificate (PEM) the agents pin (`KUBOARD_AGENT_SERVER_CA`).
    pub server_ca_pem: &'a str,
}

/// Checks one agent address: `host:port`, no spaces or separators.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return Err(format!("{endpoint:?} is not host:port"));
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if !host_ok {
        return Err(format!("{endpoint:?}: the host is not a name or an address"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!("{endpoint:?}: the port is not 1-65535")),
    }
}

/// Checks an image reference: 1-255 printable characters without spaces.
pub fn check_image(image: &str) -> Result<(), String> {
    if image.is_empty() || image.len() > 255 || !image.chars().all(|c| c.is_ascii_graphic()) {
        return Err("the image must be 1-255 printable characters without spaces".into());
    }
    Ok(())
}

/// The multi-document YAML.
pub fn render(params: &ManifestParams<'_>) -> String {
    let name = format!("kuboard-agent-{}", params.cluster);
    let labels = json!({"app.kubernetes.io/name": "kuboard-agent", "kuboard.cn/cluster": params.cluster});
    let documents: Vec<Value> = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": [
            {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"], "verbs": ["impersonate"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["userextras/scopes", "uids"], "verbs": ["impersonate"]},
            {"nonResourceURLs": ["/version", "/healthz", "/readyz", "/livez"], "verbs": ["get"]}
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "stringData": {"token": params.token, "server-ca.pem": params.server_ca_pem}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": labels}}}]}},
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "agent",
                        "image": params.image,
                        "args": ["agent"],
                        "env": [
                            {"name": "KUBOARD_AGENT_ENDPOINT", "value": params.endpoints.join(",")},
                            {"name": "KUBOARD_AGENT_CLUSTER", "value": params.cluster},
                            {"name": "KUBOARD_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}}},
                            {"name": "KUBOARD_AGENT_SERVER_CA", "valueFrom": {"secretKeyRef": {"name": name, "key": "server-ca.pem"}}},
                            {"name": "KUBOARD_AGENT_HEALTH_LISTEN", "value": format!("0.0.0.0:{HEALTH_PORT}")}
                        ],
                        "ports": [{"name": "health", "containerPort": HEALTH_PORT}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"}, "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }}),
    ];
    documents
        .iter()
        .map(|document| serde_norway::to_string(document).expect("a JSON value always serializes to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----\n";

    /// The documents, split at `---` lines only (a PEM's `-----END CERTIFICATE-----` is not one).
    fn documents(text: &str) -> Vec<Value> {
        text.split("\n---\n")
            .map(|part| serde_norway::from_str(part).expect("each document is YAML"))
            .collect()
    }

    #[test]
    fn the_manifest_has_every_part_and_carries_the_inputs_as_values() {
        let endpoints = vec!["kuboard1:10081".to_string(), "10.0.0.2:10081".to_string()];
        let text = render(&ManifestParams {
            cluster: "edge",
            token: "the-token",
            endpoints: &endpoints,
            image: "registry.example/kuboard:v3",
            server_ca_pem: CA_PEM,
        });
        let docs = documents(&text);
        let kinds: Vec<&str> = docs.iter().map(|doc| doc["kind"].as_str().unwrap_or("")).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Secret",
                "Deployment"
            ]
        );
        assert_eq!(docs[4]["stringData"]["token"], "the-token");
        assert_eq!(
            docs[4]["stringData"]["server-ca.pem"], CA_PEM,
            "the CA survives YAML intact"
        );
        let deployment = &docs[5];
        assert_eq!(deployment["spec"]["replicas"], 2);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "registry.example/kuboard:v3");
        assert_eq!(container["args"], json!(["agent"]));
        assert_eq!(container["env"][0]["value"], "kuboard1:10081,10.0.0.2:10081");
        assert_eq!(container["env"][1]["value"], "edge");
        assert_eq!(
            container["env"][2]["valueFrom"]["secretKeyRef"]["name"],
            "kuboard-agent-edge"
        );
        assert_eq!(container["env"][3]["name"], "KUBOARD_AGENT_SERVER_CA");
        assert_eq!(
            container["env"][3]["valueFrom"]["secretKeyRef"],
            json!({"name": "kuboard-agent-edge", "key": "server-ca.pem"})
        );
        assert!(!text.contains("PRIVATE KEY"));
        let rules = docs[2]["rules"].as_array().expect("rules");
        assert!(rules[0]["verbs"] == json!(["impersonate"]));
        assert_eq!(docs[3]["subjects"][0]["name"], "kuboard-agent-edge");
        assert_eq!(text.matches("the-token").count(), 1, "the token is in the secret only");
    }

    #[test]
    fn endpoints_and_images_are_checked() {
        for good in ["kuboard1:10081", "10.0.0.1:1", "[::1]:10081"] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        for bad in [
            "kuboard1",
            "kuboard1:0",
            "kuboard1:70000",
            ":10081",
            "a b:1",
            "a,b:1",
            "a\n:1",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad:?}");
        }
        assert!(check_image("eipwork/kuboard:v3").is_ok());
        assert!(check_image("").is_err());
        assert!(check_image("a b").is_err());
        assert!(check_image("a\nkind: Pod").is_err());
    }
}
