//! `GET /metrics`: the process's Prometheus metrics in the text format, with the outbox's
//! waiting items read from the store at each scrape. Served on the shared listener, or only on
//! `--admin-listen` when that is set (so that it can be kept off the public side).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flowbot_store::Service;

/// How long the store may take to count what waits, before the scrape answers without it.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The OpenMetrics text format, which is what the encoder writes (Prometheus reads it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` route.
pub fn routes(service: Arc<Service>) -> axum::Router {
    axum::Router::new().route("/metrics", get(metrics)).with_state(service)
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let counts = tokio::time::timeout(STORE_TIMEOUT, service.store().delivery_counts()).await;
    match counts {
        Ok(Ok(counts)) => {
            let now = service.now();
            let oldest =
                counts.oldest_pending.map(|at| Duration::from_millis(now.0.saturating_sub(at.0)));
            service.metrics().set_pending(&counts, oldest);
        }
        // The gauges keep their last values; the counters are the process's own.
        Ok(Err(err)) => tracing::debug!(error = %err, "metrics: the store did not count"),
        Err(_) => tracing::debug!("metrics: the store did not answer in time"),
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], service.metrics().encode())
        .into_response()
}
