//! `GET /kuboard-api/audit` (events from the database or the local audit log, newest first, with a
//! cursor) and
//! `GET /kuboard-api/audit/status` (policy, state, queue, spool, counters). Administrators only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;

use crate::audit::audit_event::AuditEvent;
use crate::audit::audit_service::{AuditService, AuditStatus};
use crate::audit::dialect::{COLUMNS, TABLE};
use crate::audit::local_log::{EventFilter, LocalLog};
use crate::audit::pg_timestamp::PgTimestamp;
use crate::http::api_error::ApiError;
use crate::http::api_query::ApiQuery;
use crate::http::caller::Caller;
use crate::http::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The OpenAPI paths of the audit routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_events, audit_status))]
pub struct AuditApi;

pub fn router(service: Arc<AuditService>) -> Router<AppState> {
    Router::new()
        .route("/kuboard-api/audit", get(list_events))
        .route("/kuboard-api/audit/status", get(audit_status))
        .layer(Extension(service))
}

/// Filters of the event list. Times are microseconds since the Unix epoch.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub user: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub verb: Option<String>,
    /// The Kubernetes resource (`pods`, `deployments`), or the Kuboard one (`users`, `clusters`).
    pub resource: Option<String>,
    pub status: Option<i32>,
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The audit pipeline's state: policy, queue, spool and counters (administrators).
#[utoipa::path(get, path = "/kuboard-api/audit/status", tag = "system",
    responses((status = 200, body = AuditStatus), (status = 401, body = crate::http::api_error::ErrorBody),
        (status = 403, body = crate::http::api_error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_status(
    State(state): State<AppState>,
    caller: Caller,
    Extension(service): Extension<Arc<AuditService>>,
) -> Result<Json<AuditStatus>, ApiError> {
    caller.require_administrator(&state).await?;
    Ok(Json(service.status()))
}

/// Audit events from the database, newest first, a page at a time (administrators).
#[utoipa::path(get, path = "/kuboard-api/audit", tag = "system", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = crate::http::api_error::ErrorBody),
        (status = 401, body = crate::http::api_error::ErrorBody), (status = 403, body = crate::http::api_error::ErrorBody),
        (status = 404, description = "Audit is disabled", body = crate::http::api_error::ErrorBody),
        (status = 503, body = crate::http::api_error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Extension(service): Extension<Arc<AuditService>>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require_administrator(&state).await?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(parse_cursor(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "the cursor is not one this API handed out",
            )
        })?),
    };
    if let Some(local) = service.local() {
        return list_local(local.clone(), query, limit, cursor).await;
    }
    let Some(writer) = service.writer() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "audit_not_recorded",
            "audit is disabled (KUBOARD_DISABLE_AUDIT): no events are recorded",
        ));
    };

    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut push = |condition: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        conditions.push(condition.replace('?', &format!("${}", params.len())));
    };
    if let Some(from) = query.from {
        push("ts >= ?", Box::new(PgTimestamp::from_unix_micros(from)));
    }
    if let Some(to) = query.to {
        push("ts < ?", Box::new(PgTimestamp::from_unix_micros(to)));
    }
    for (column, value) in [
        ("username", &query.user),
        ("cluster", &query.cluster),
        ("namespace", &query.namespace),
        ("verb", &query.verb),
        ("resource", &query.resource),
    ] {
        if let Some(value) = value {
            push(&format!("{column} = ?"), Box::new(value.clone()));
        }
    }
    if let Some(status) = query.status {
        push("status_code = ?", Box::new(status));
    }
    if let Some((ts, id)) = cursor {
        // Keyset paging (QuestDB has no OFFSET): strictly older than the last row handed out.
        params.push(Box::new(PgTimestamp::from_unix_micros(ts)));
        let ts_param = params.len();
        params.push(Box::new(id));
        let id_param = params.len();
        conditions.push(format!(
            "(ts < ${ts_param} OR (ts = ${ts_param} AND audit_id < ${id_param}))"
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let mut writer = writer.lock().await;
    let sql = format!(
        "SELECT {COLUMNS} FROM {TABLE} {filter} ORDER BY ts DESC, audit_id DESC {}",
        writer.dialect().limit_sql(limit + 1)
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let rows = writer
        .query(&sql, &refs)
        .await
        .map_err(|error| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", error.to_string()))?;
    drop(writer);
    let mut events = rows
        .iter()
        .map(row_of)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events
            .last()
            .map(|last| format!("{}.{}", last.ts_micros, last.audit_id))
    } else {
        None
    };
    Ok(Json(AuditPage { events, next_cursor }))
}

/// The same page from the local audit log.
async fn list_local(
    local: Arc<LocalLog>,
    query: AuditQuery,
    limit: u32,
    cursor: Option<(i64, String)>,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = EventFilter {
        from: query.from,
        to: query.to,
        user: query.user,
        cluster: query.cluster,
        namespace: query.namespace,
        verb: query.verb,
        resource: query.resource,
        status: query.status,
        before: cursor,
    };
    let (events, more) = tokio::task::spawn_blocking(move || local.query(&filter, limit as usize))
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                format!("the local audit log cannot be read: {error}"),
            )
        })?;
    let next_cursor = if more {
        events
            .last()
            .map(|last| format!("{}.{}", last.ts_micros, last.audit_id))
    } else {
        None
    };
    Ok(Json(AuditPage { events, next_cursor }))
}

fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let (ts, id) = text.split_once('.')?;
    Some((ts.parse().ok()?, id.to_string()))
}

fn row_of(row: &tokio_postgres::Row) -> Result<AuditEvent, tokio_postgres::Error> {
    let text = |index: usize| -> Result<String, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<String>>(index)?.unwrap_or_default())
    };
    Ok(AuditEvent {
        ts_micros: row.try_get::<_, PgTimestamp>(0)?.unix_micros(),
        audit_id: text(1)?,
        replica: row.try_get::<_, Option<i64>>(2)?.unwrap_or_default(),
        cluster: text(3)?,
        username: text(4)?,
        groups: text(5)?,
        client: text(6)?,
        source_ip: text(7)?,
        user_agent: text(8)?,
        verb: text(9)?,
        api_group: text(10)?,
        resource: text(11)?,
        subresource: text(12)?,
        namespace: text(13)?,
        name: text(14)?,
        request_uri: text(15)?,
        status_code: row.try_get::<_, Option<i32>>(16)?.unwrap_or_default(),
        duration_ms: row.try_get::<_, Option<i64>>(17)?.unwrap_or_default(),
        decision: text(18)?,
        message: text(19)?,
    })
}
