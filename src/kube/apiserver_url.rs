//! [`ApiserverUrl`]: one apiserver address, `http(s)://host[:port][/path-prefix]`.

use std::fmt;

/// A parsed apiserver address. The path prefix (kept without a trailing slash) serves apiservers
/// reached through a path-routing proxy, as kubeconfigs allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiserverUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is empty")]
    Empty,
    #[error("must start with https:// or http://")]
    Scheme,
    #[error("is not a valid URL")]
    Syntax,
    #[error("has no host")]
    NoHost,
    #[error("must not carry a user name or password")]
    UserInfo,
    #[error("must not carry a query or fragment")]
    Query,
}

impl ApiserverUrl {
    pub fn parse(text: &str) -> Result<ApiserverUrl, UrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UrlError::Empty);
        }
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(UrlError::Scheme);
        };
        if rest.contains(['?', '#']) {
            return Err(UrlError::Query);
        }
        let (authority, path) = match rest.find('/') {
            Some(index) => rest.split_at(index),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        if authority.is_empty() {
            return Err(UrlError::NoHost);
        }
        let parsed: http::uri::Authority = authority.parse().map_err(|_| UrlError::Syntax)?;
        let host = parsed.host().trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        // `Authority` keeps a port it cannot read as a number; an explicit port must be one.
        let has_port = authority
            .rsplit_once(']')
            .map_or(authority, |(_, after)| after)
            .contains(':');
        let port = match (has_port, parsed.port_u16()) {
            (true, Some(port)) => port,
            (true, None) => return Err(UrlError::Syntax),
            (false, _) => {
                if https {
                    443
                } else {
                    80
                }
            }
        };
        if path.contains(char::is_whitespace) || path.contains("//") {
            return Err(UrlError::Syntax);
        }
        Ok(ApiserverUrl {
            https,
            host,
            port,
            path_prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The absolute URI of `path_and_query` (which starts with `/`) on this server.
    pub fn join(&self, path_and_query: &str) -> Result<http::Uri, http::Error> {
        let scheme = if self.https { "https" } else { "http" };
        let uri = format!("{scheme}://{}{}{path_and_query}", self.authority(), self.path_prefix);
        Ok(http::Uri::try_from(uri)?)
    }
}

impl fmt::Display for ApiserverUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(formatter, "{scheme}://{}{}", self.authority(), self.path_prefix)
    }
}

/// Splits Kuboard's comma-separated server field into URLs (empty items are ignored).
pub fn split_server_field(field: &str) -> Vec<&str> {
    field
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<&str, UrlError>) {
        let parsed = ApiserverUrl::parse(text).map(|url| url.to_string());
        assert_eq!(parsed.as_deref().map_err(Clone::clone), expected, "{text}");
    }

    #[test]
    fn urls() {
        check("https://10.0.0.1:6443", Ok("https://10.0.0.1:6443"));
        check("https://10.0.0.1:6443/", Ok("https://10.0.0.1:6443"));
        check("https://api.example", Ok("https://api.example:443"));
        check("http://127.0.0.1:8080", Ok("http://127.0.0.1:8080"));
        check("https://[::1]:6443", Ok("https://[::1]:6443"));
        check(
            "https://rancher.example/k8s/clusters/c-1/",
            Ok("https://rancher.example:443/k8s/clusters/c-1"),
        );
        check("", Err(UrlError::Empty));
        check("10.0.0.1:6443", Err(UrlError::Scheme));
        check("ftp://x", Err(UrlError::Scheme));
        check("https://", Err(UrlError::NoHost));
        check("https://user:pw@host:6443", Err(UrlError::UserInfo));
        check("https://host:6443?x=1", Err(UrlError::Query));
        check("https://host:notaport", Err(UrlError::Syntax));
    }

    #[test]
    fn joins_paths_under_the_prefix() {
        let url = ApiserverUrl::parse("https://h:1/p").expect("valid");
        assert_eq!(
            url.join("/api/v1/pods?limit=1").expect("valid").to_string(),
            "https://h:1/p/api/v1/pods?limit=1"
        );
        assert_eq!(
            split_server_field(" https://a:1, ,https://b:2 "),
            vec!["https://a:1", "https://b:2"]
        );
    }
}
