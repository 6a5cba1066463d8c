//! [`PgWriter`]: the connection to the audit database over PG-wire. It connects (and creates the
//! table) on first use and again after any failure, so the database may come and go.

use std::time::Duration;

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::audit::audit_event::AuditEvent;
use crate::audit::dialect::{Dialect, COLUMN_COUNT, MAX_PARAMS};
use crate::audit::pg_timestamp::PgTimestamp;

/// A connection attempt or a batch never waits longer than this.
const IO_DEADLINE: Duration = Duration::from_secs(3);

/// Rows per INSERT statement: a whole default batch (500) fits, and the parameters stay well
/// below PG-wire's limit so the statement text stays small enough for QuestDB's parser too.
const CHUNK_ROWS: usize = 1_000;
const _: () = assert!(CHUNK_ROWS * COLUMN_COUNT < MAX_PARAMS);

/// Prepared multi-row statements kept per connection (one per row count seen); past this the
/// cache starts over, so odd batch sizes cannot pile up statements on the server.
const MAX_CACHED_STATEMENTS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the audit database does not answer: {0}")]
    Unavailable(String),
}

struct Connected {
    client: Client,
    /// The INSERT prepared for each row count, so a batch is parsed once per size and connection.
    inserts: HashMap<usize, Statement>,
}

impl Connected {
    /// The INSERT for `rows` rows, prepared on first use.
    async fn insert_for(&mut self, dialect: Dialect, rows: usize) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.inserts.get(&rows) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&dialect.insert_sql(rows)).await?;
        if self.inserts.len() >= MAX_CACHED_STATEMENTS {
            self.inserts.clear();
        }
        self.inserts.insert(rows, statement.clone());
        Ok(statement)
    }
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

    async fn connect(&mut self) -> Result<&mut Connected, WriteError> {
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
                let mut inserts = HashMap::new();
                inserts.insert(1, client.prepare(&self.dialect.insert_sql(1)).await?);
                Ok::<_, tokio_postgres::Error>(Connected { client, inserts })
            };
            let connected = tokio::time::timeout(IO_DEADLINE, attempt)
                .await
                .map_err(|_| WriteError::Unavailable("connecting timed out".into()))?
                .map_err(|error| WriteError::Unavailable(error.to_string()))?;
            tracing::info!(dialect = ?self.dialect, "connected to the audit database");
            self.connected = Some(connected);
        }
        self.connected
            .as_mut()
            .ok_or_else(|| WriteError::Unavailable("not connected".into()))
    }

    /// Writes the rows in order, one multi-row INSERT (one transaction, one flush) per
    /// [`CHUNK_ROWS`]; rows already stored stay once, so a batch that failed part-way may be
    /// written again whole.
    pub async fn write(&mut self, rows: &[AuditEvent]) -> Result<(), WriteError> {
        let dialect = self.dialect;
        let result = async {
            let connected = self.connect().await?;
            let work = async {
                for chunk in rows.chunks(CHUNK_ROWS) {
                    let insert = connected.insert_for(dialect, chunk.len()).await?;
                    let timestamps: Vec<PgTimestamp> = chunk
                        .iter()
                        .map(|row| PgTimestamp::from_unix_micros(row.ts_micros))
                        .collect();
                    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * COLUMN_COUNT);
                    for (row, ts) in chunk.iter().zip(&timestamps) {
                        params.extend_from_slice(&[
                            ts,
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
                        ]);
                    }
                    connected.client.execute(&insert, &params).await?;
                }
                Ok::<_, tokio_postgres::Error>(())
            };
            tokio::time::timeout(IO_DEADLINE, work)
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
