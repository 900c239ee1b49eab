//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::server::AppState;

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and its migrations are at head.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match crate::db::pending_migrations(&state.db).await {
        Ok(pending) if pending.is_empty() => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(pending) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "migrations pending", "pending": pending })),
        ),
        Err(err) => {
            tracing::warn!(error = format!("{err:#}"), "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database unavailable" })),
            )
        }
    }
}
