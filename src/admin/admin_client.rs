//! [`AdminClient`]: how a `kuboard admin` command talks to a running replica over its REST API,
//! with a bearer token given by the operator or a session it logs in for (and ends afterwards);
//! [`CommandError`] and [`run_command`]: the exit codes every admin command shares.

use std::time::Duration;

use anyhow::{bail, Context};

use super::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

/// An error of an admin command: a usage fault (exit 2) or a failure (exit 1).
pub enum CommandError {
    Usage(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for CommandError {
    fn from(error: anyhow::Error) -> Self {
        CommandError::Failed(error)
    }
}

/// Turns a command's outcome into its output and exit code: the summary on stdout, or one
/// `error:` line on stderr.
pub fn exit_code(outcome: Result<String, CommandError>) -> u8 {
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            EXIT_OK
        }
        Err(CommandError::Usage(message)) => {
            eprintln!("error: {message}");
            EXIT_USAGE
        }
        Err(CommandError::Failed(error)) => {
            eprintln!("error: {error:#}");
            EXIT_FAILURE
        }
    }
}

/// Runs a command that needs no store settings on a fresh runtime; returns the exit code.
pub fn run_command<Fut>(command: Fut) -> u8
where
    Fut: std::future::Future<Output = Result<String, CommandError>>,
{
    // An operator tool prints its result; only warnings and errors are logged.
    crate::logging::init(&crate::config::LogConfig {
        filter: "warn".to_string(),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: start the async runtime: {error}");
            return EXIT_FAILURE;
        }
    };
    let outcome = runtime.block_on(command);
    runtime.shutdown_timeout(Duration::from_millis(500));
    exit_code(outcome)
}

/// An authenticated HTTP client of one replica. Call [`AdminClient::finish`] when done so that a
/// session opened with a password is ended.
pub struct AdminClient {
    pub base: String,
    pub http: reqwest::Client,
    token: String,
    logged_in: bool,
}

impl AdminClient {
    /// Checks the URL and the credentials and, without a token, logs in as `username`.
    pub async fn connect(
        server: &str,
        token: Option<&str>,
        username: &str,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<AdminClient, CommandError> {
        let base = server.trim().trim_end_matches('/').to_string();
        let has_host = base
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty());
        if !has_host || base.contains(char::is_whitespace) {
            return Err(CommandError::Usage(format!(
                "--server={server:?}: expected a URL starting with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("build the HTTP client")?;
        let (token, logged_in) = match (token, password) {
            (Some(token), _) => (token.to_string(), false),
            (None, Some(password)) => (login(&http, &base, username, password).await?, true),
            (None, None) => {
                return Err(CommandError::Usage(
                    "--server needs --token (KUBOARD_ADMIN_TOKEN) or --password (KUBOARD_ADMIN_PASSWORD) of the \
                     admin user"
                        .to_string(),
                ))
            }
        };
        Ok(AdminClient {
            base,
            http,
            token,
            logged_in,
        })
    }

    /// A request to `path` on the replica, carrying the bearer token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Ends the session this client logged in for, if any.
    pub async fn finish(self) {
        if !self.logged_in {
            return;
        }
        let logout = self
            .request(reqwest::Method::POST, "/kuboard-api/auth/logout")
            .send()
            .await;
        if let Err(error) = logout {
            tracing::warn!(%error, "ending the admin session failed");
        }
    }
}

async fn login(client: &reqwest::Client, base: &str, username: &str, password: &str) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/kuboard-api/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .with_context(|| format!("log in to {base}"))?;
    if !response.status().is_success() {
        bail!(
            "{base} refused the login of {username}: {}",
            describe_error(response).await
        );
    }
    let body: serde_json::Value = response.json().await.context("read the login answer")?;
    body["token"]
        .as_str()
        .map(str::to_string)
        .context("the login answer has no token")
}

/// `503 Service Unavailable store_unavailable: the store cannot …` from an API error response.
pub async fn describe_error(response: reqwest::Response) -> String {
    let status = response.status();
    match response.json::<serde_json::Value>().await {
        Ok(body) => format!(
            "{status} {}: {}",
            body["code"].as_str().unwrap_or("unknown"),
            body["message"].as_str().unwrap_or("")
        ),
        Err(_) => status.to_string(),
    }
}
