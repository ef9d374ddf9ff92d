//! Liveness and readiness on the listener: `GET /livez` (alias `/healthz`) answers while the
//! process does; `GET /readyz` answers 200 only when the database answers with the expected
//! schema, the flow is loaded and every enabled platform is serving, and 503 with the list of
//! what is not.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flowbot_adapter::Running;
use flowbot_store::Service;
use serde_json::json;

/// How long the database may take to answer a readiness check.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness looks at.
#[derive(Debug, Clone)]
pub struct Health {
    pub service: Arc<Service>,
    /// The enabled platforms, by name, once started.
    pub platforms: Vec<(&'static str, Arc<dyn Running>)>,
}

/// `/livez`, `/healthz` and `/readyz`.
pub fn routes(health: Health) -> axum::Router {
    axum::Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Arc::new(health))
}

async fn ready(State(health): State<Arc<Health>>) -> Response {
    let mut failed = Vec::new();
    let store = health.service.store();
    match tokio::time::timeout(DATABASE_TIMEOUT, store.ready()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => failed.push(format!("database: {err}")),
        Err(_) => {
            failed.push(format!("database: no answer within {} s", DATABASE_TIMEOUT.as_secs()))
        }
    }
    for (name, platform) in &health.platforms {
        if let Err(reason) = platform.ready() {
            failed.push(format!("{name}: {reason}"));
        }
    }
    let flow = health.service.flow();
    let flow = json!({"id": flow.id(), "version": flow.version().to_string()});
    let platforms: Vec<&str> = health.platforms.iter().map(|(name, _)| *name).collect();
    if failed.is_empty() {
        let body = json!({"ready": true, "flow": flow, "platforms": platforms});
        (StatusCode::OK, Json(body)).into_response()
    } else {
        tracing::debug!(failed = ?failed, "not ready");
        let body = json!({"ready": false, "failed": failed, "flow": flow, "platforms": platforms});
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}
