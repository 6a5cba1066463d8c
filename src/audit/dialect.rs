//! The SQL that differs between QuestDB (production) and PostgreSQL (the PG-wire peer of the
//! tests): table creation, idempotent inserts and paging. Everything else is common SQL.

/// Which database is at the other end of `KUBOARD_QUEST_DB_URI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    QuestDb,
    Postgres,
}

/// The columns of the audit table, in the order of [`Dialect::insert_sql`]'s parameters.
pub const COLUMNS: &str = "ts, audit_id, replica, cluster, username, groups, client, source_ip, user_agent, verb, \
                           api_group, resource, subresource, namespace, name, request_uri, status_code, duration_ms, \
                           decision, message";

/// How many columns [`COLUMNS`] names, that is the parameters of one row.
pub const COLUMN_COUNT: usize = 20;

/// PG-wire counts a statement's parameters in 16 bits, so one statement binds at most this many
/// values.
pub const MAX_PARAMS: usize = 65_535;

pub const TABLE: &str = "kuboard_audit";

impl Dialect {
    /// The table: designated timestamp, daily partitions, WAL and deduplication on QuestDB, so a
    /// replayed batch leaves one row per event; a primary key does the same on PostgreSQL.
    pub fn create_table_sql(self) -> String {
        match self {
            Dialect::QuestDb => format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (ts TIMESTAMP, audit_id VARCHAR, replica LONG, cluster SYMBOL, \
                 username SYMBOL, groups VARCHAR, client SYMBOL, source_ip VARCHAR, user_agent VARCHAR, verb SYMBOL, \
                 api_group SYMBOL, resource SYMBOL, subresource SYMBOL, namespace SYMBOL, name VARCHAR, \
                 request_uri VARCHAR, status_code INT, duration_ms LONG, decision SYMBOL, message VARCHAR) \
                 TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, audit_id)"
            ),
            Dialect::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (ts TIMESTAMP NOT NULL, audit_id TEXT NOT NULL, replica BIGINT, \
                 cluster TEXT, username TEXT, groups TEXT, client TEXT, source_ip TEXT, user_agent TEXT, verb TEXT, \
                 api_group TEXT, resource TEXT, subresource TEXT, namespace TEXT, name TEXT, request_uri TEXT, \
                 status_code INT, duration_ms BIGINT, decision TEXT, message TEXT, PRIMARY KEY (ts, audit_id))"
            ),
        }
    }

    /// `rows` rows in one statement (parameters numbered row after row, in [`COLUMNS`] order); a row
    /// already there (same `ts` and `audit_id`) is kept once. Both databases take multi-row VALUES,
    /// so a batch is one statement, one transaction and one flush instead of one per event.
    pub fn insert_sql(self, rows: usize) -> String {
        let tuples: Vec<String> = (0..rows.max(1))
            .map(|row| {
                let params: Vec<String> = (1..=COLUMN_COUNT)
                    .map(|n| format!("${}", row * COLUMN_COUNT + n))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let base = format!("INSERT INTO {TABLE} ({COLUMNS}) VALUES {}", tuples.join(", "));
        match self {
            // DEDUP UPSERT KEYS makes the insert idempotent by itself.
            Dialect::QuestDb => base,
            // DO NOTHING (unlike DO UPDATE) also accepts the same key twice within one statement.
            Dialect::Postgres => format!("{base} ON CONFLICT (ts, audit_id) DO NOTHING"),
        }
    }

    /// The paging clause: QuestDB has no OFFSET, so pages follow a cursor and take the first `limit`.
    pub fn limit_sql(self, limit: u32) -> String {
        match self {
            Dialect::QuestDb => format!("LIMIT 0,{limit}"),
            Dialect::Postgres => format!("LIMIT {limit}"),
        }
    }

    /// QuestDB listens on 8812 by default; anything else is taken for PostgreSQL unless the URI
    /// says `dialect=questdb|postgres` (the parameter is removed before connecting).
    pub fn from_uri(uri: &str) -> (Dialect, String) {
        let (base, query) = match uri.split_once('?') {
            Some((base, query)) => (base, query),
            None => (uri, ""),
        };
        let mut dialect = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair {
                "dialect=questdb" => dialect = Some(Dialect::QuestDb),
                "dialect=postgres" => dialect = Some(Dialect::Postgres),
                other => kept.push(other),
            }
        }
        let dialect = dialect.unwrap_or(if base.contains(":8812/") || base.ends_with(":8812") {
            Dialect::QuestDb
        } else {
            Dialect::Postgres
        });
        let uri = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (dialect, uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questdb_table_has_designated_timestamp_daily_wal_partitions_and_dedup() {
        let sql = Dialect::QuestDb.create_table_sql();
        assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS kuboard_audit (ts TIMESTAMP, audit_id VARCHAR,"));
        assert!(sql.ends_with("TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, audit_id)"));
        assert!(!Dialect::QuestDb.insert_sql(1).contains("ON CONFLICT"));
        assert!(Dialect::Postgres
            .insert_sql(1)
            .ends_with("ON CONFLICT (ts, audit_id) DO NOTHING"));
        assert_eq!(Dialect::QuestDb.limit_sql(50), "LIMIT 0,50");
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
    }

    #[test]
    fn multi_row_insert_numbers_parameters_row_after_row() {
        let sql = Dialect::QuestDb.insert_sql(3);
        assert!(sql.contains("VALUES ($1, $2,"));
        assert!(sql.contains("$20), ($21, $22,"));
        assert!(sql.ends_with("$59, $60)"));
        assert!(!sql.contains("$61"));
        assert_eq!(Dialect::Postgres.insert_sql(0), Dialect::Postgres.insert_sql(1));
    }

    #[test]
    fn dialect_follows_port_or_parameter() {
        assert_eq!(
            Dialect::from_uri("postgresql://admin:quest@q:8812/qdb").0,
            Dialect::QuestDb
        );
        let (dialect, uri) = Dialect::from_uri("postgresql://u@127.0.0.1:5432/db?dialect=postgres&x=1");
        assert_eq!(dialect, Dialect::Postgres);
        assert_eq!(uri, "postgresql://u@127.0.0.1:5432/db?x=1");
    }
}
