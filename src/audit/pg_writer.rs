//! [`PgWriter`]: the connection to the audit database over PG-wire. It connects (and creates the
//! table) on first use and again after any failure, so the database may come and go.

use std::time::Duration;

use futures::future::try_join_all;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::audit::audit_row::AuditRow;
use crate::audit::dialect::Dialect;
use crate::audit::pg_timestamp::PgTimestamp;

/// A connection attempt or a batch never waits longer than this.
const IO_DEADLINE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the audit database does not answer: {0}")]
    Unavailable(String),
}

struct Connected {
    client: Client,
    insert: Statement,
}

pub struct PgWriter {
    uri: String,
    dialect: Dialect,
    connected: Option<Connected>,
}

impl PgWriter {
    pub fn new(uri: &str) -> PgWriter {
        let (dialect, uri) = Dialect::from_uri(uri);
        PgWriter {
            uri,
            dialect,
            connected: None,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn connect(&mut self) -> Result<&Connected, WriteError> {
        if self
            .connected
            .as_ref()
            .is_some_and(|connected| connected.client.is_closed())
        {
            self.connected = None;
        }
        if self.connected.is_none() {
            let attempt = async {
                let (client, connection) = tokio_postgres::connect(&self.uri, NoTls).await?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "the audit database connection ended");
                    }
                });
                client.batch_execute(&self.dialect.create_table_sql()).await?;
                let insert = client.prepare(&self.dialect.insert_sql()).await?;
                Ok::<_, tokio_postgres::Error>(Connected { client, insert })
            };
            let connected = tokio::time::timeout(IO_DEADLINE, attempt)
                .await
                .map_err(|_| WriteError::Unavailable("connecting timed out".into()))?
                .map_err(|error| WriteError::Unavailable(error.to_string()))?;
            tracing::info!(dialect = ?self.dialect, "connected to the audit database");
            self.connected = Some(connected);
        }
        self.connected
            .as_ref()
            .ok_or_else(|| WriteError::Unavailable("not connected".into()))
    }

    /// Writes the rows (pipelined on one connection); rows already stored stay once.
    pub async fn write(&mut self, rows: &[AuditRow]) -> Result<(), WriteError> {
        let result = async {
            let connected = self.connect().await?;
            let (client, insert) = (&connected.client, &connected.insert);
            let inserts = rows.iter().map(|row| async move {
                let ts = PgTimestamp::from_unix_micros(row.ts_micros);
                client
                    .execute(
                        insert,
                        &[
                            &ts,
                            &row.audit_id,
                            &row.replica,
                            &row.cluster,
                            &row.username,
                            &row.groups,
                            &row.client,
                            &row.source_ip,
                            &row.user_agent,
                            &row.verb,
                            &row.api_group,
                            &row.resource,
                            &row.subresource,
                            &row.namespace,
                            &row.name,
                            &row.request_uri,
                            &row.status_code,
                            &row.duration_ms,
                            &row.decision,
                            &row.message,
                        ],
                    )
                    .await
            });
            tokio::time::timeout(IO_DEADLINE, try_join_all(inserts))
                .await
                .map_err(|_| WriteError::Unavailable("writing timed out".into()))?
                .map_err(|error| WriteError::Unavailable(error.to_string()))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            self.connected = None;
        }
        result
    }

    /// Checks that the database answers (used to end a strict pause without an event).
    pub async fn ping(&mut self) -> Result<(), WriteError> {
        let result = async {
            let connected = self.connect().await?;
            tokio::time::timeout(IO_DEADLINE, connected.client.simple_query("SELECT 1"))
                .await
                .map_err(|_| WriteError::Unavailable("the check timed out".into()))?
                .map_err(|error| WriteError::Unavailable(error.to_string()))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            self.connected = None;
        }
        result
    }

    /// Runs a read built by the query API.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, WriteError> {
        let result = async {
            let connected = self.connect().await?;
            tokio::time::timeout(IO_DEADLINE, connected.client.query(sql, params))
                .await
                .map_err(|_| WriteError::Unavailable("the query timed out".into()))?
                .map_err(|error| WriteError::Unavailable(error.to_string()))
        }
        .await;
        if result.is_err() {
            self.connected = None;
        }
        result
    }
}
