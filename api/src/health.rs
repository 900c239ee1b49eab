//! Liveness and readiness probes.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and its migrations are at head —
/// checked on the probe's own connection, within its own time limit.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let limit = Duration::from_millis(state.config.readiness_timeout_ms);
    let checked = tokio::time::timeout(limit, crate::db::pending_migrations(&state.readiness));
    match checked.await {
        Ok(Ok(pending)) if pending.is_empty() => {
            (StatusCode::OK, Json(json!({ "status": "ready" })))
        }
        Ok(Ok(pending)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "migrations pending", "pending": pending })),
        ),
        Ok(Err(err)) => {
            tracing::warn!(error = format!("{err:#}"), "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database unavailable" })),
            )
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database unavailable" })),
            )
        }
    }
}
