//! The kubeconfig a user downloads to reach a cluster through Kuboard's proxy with their own
//! Kuboard identity: one cluster (`{base}/k8s-api/{cluster}`), one user with a bearer token,
//! one context.

use serde_json::json;

/// The kubeconfig text for `username` on `cluster`. `base_url` is Kuboard's public URL without a
/// trailing slash; `token` is the user's access key or session token.
pub fn user_kubeconfig(base_url: &str, cluster: &str, username: &str, token: &str) -> String {
    let user = format!("kuboard-{username}");
    let context = format!("kuboard-{cluster}");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": cluster,
            "cluster": {"server": format!("{}/k8s-api/{cluster}", base_url.trim_end_matches('/'))},
        }],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
    });
    serde_norway::to_string(&config).expect("a JSON value always serializes to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kubeconfig_import::parse_kubeconfig;

    #[test]
    fn a_downloaded_kubeconfig_reads_back() {
        let text = user_kubeconfig("http://kuboard.example:8080/", "prod", "alice", "kbak_0123_secret");
        let imported = parse_kubeconfig(&text, None).expect("the generated kubeconfig is valid");
        assert_eq!(imported.context.as_deref(), Some("kuboard-prod"));
        assert_eq!(
            imported.endpoints[0].to_string(),
            "http://kuboard.example:8080/k8s-api/prod"
        );
        assert_eq!(imported.credentials.token.as_deref(), Some("kbak_0123_secret"));
    }
}
