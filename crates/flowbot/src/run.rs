//! `flowbot run`: the bot on the configured messengers, with the shared HTTP listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use flowbot_adapter::{Platform, Running};
use flowbot_store::Service;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::flows::FlowSource;
use crate::platforms::Platforms;
use crate::store::StoreArgs;

/// The listener's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flow file to run (default: the embedded G-MIS flow); SIGHUP reloads it.
    #[arg(long, value_name = "FILE")]
    flow: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// The HTTP listener shared by webhooks, pages and the health checks (`GET /livez`, alias
    /// `/healthz`; `GET /readyz`).
    #[arg(long, env = "FLOWBOT_LISTEN", value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// A second listener for `GET /metrics` (and the health checks), kept off the public side;
    /// without it, `/metrics` is on `--listen`.
    #[arg(long, env = "FLOWBOT_ADMIN_LISTEN", value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    #[command(flatten)]
    platforms: Platforms,
}

pub async fn run(mut args: RunArgs, config: &Config) -> anyhow::Result<ExitCode> {
    args.platforms.configure(config);
    let enabled: Vec<&dyn Platform> =
        args.platforms.all().into_iter().filter(|p| p.enabled()).collect();
    if enabled.is_empty() {
        let hints: Vec<&str> = args.platforms.all().iter().map(|p| p.about().enable_hint).collect();
        anyhow::bail!(
            "no messenger is configured: set {}.\n\
             To try the flow without a messenger, run `flowbot chat`.",
            hints.join(", or ")
        );
    }
    let source = FlowSource::read(args.flow.as_deref())?;
    let limits = enabled.iter().map(|p| *p.about().limits).collect();
    let service = args.store.service_for(&source, config, limits).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            crate::shutdown().await;
            tracing::info!("stopping: finishing the updates in flight");
            shutdown.cancel();
        }
    });
    tokio::spawn(reload_on_hangup(service.clone(), args.flow.clone()));

    let mut router = axum::Router::new();
    let mut running: Vec<(&'static str, Arc<dyn Running>)> = Vec::new();
    let mut routes = crate::handoff::Routes::new();
    for platform in &enabled {
        let started = platform.start(service.clone()).await?;
        if let Some(platform_routes) = started.routes() {
            router = router.merge(platform_routes);
        }
        if let Some(replies) = started.replies() {
            routes.insert(platform.about().name.to_owned(), (replies, config.reply_route()));
        }
        running.push((platform.about().name, started));
    }
    routes.extend(crate::handoff::routes(config, &running, &service.clock())?);
    routes.extend(crate::notice::routes(&running, config.handoff_route()));
    let health = crate::health::Health { service: service.clone(), platforms: running.clone() };
    router = router.merge(crate::health::routes(health.clone()));
    let metrics = crate::metrics::routes(service.clone());
    let admin = match args.admin_listen {
        None => {
            router = router.merge(metrics);
            None
        }
        Some(address) => {
            let admin = crate::health::routes(health).merge(metrics);
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (--admin-listen)"))?;
            tracing::info!("http: metrics and health on {}", listener.local_addr()?);
            let stop = shutdown.clone();
            Some(tokio::spawn(async move {
                axum::serve(listener, admin)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }))
        }
    };
    let delivery = crate::handoff::start(&service, config, routes, shutdown.clone());
    let tasks: Vec<_> = running
        .iter()
        .map(|(_, platform)| tokio::spawn(platform.clone().run(shutdown.clone())))
        .collect();

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!("http: listening on {address}");
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown({
            let shutdown = shutdown.clone();
            async move { shutdown.cancelled().await }
        });
    server.await.context("the HTTP listener failed")?;
    if let Some(admin) = admin {
        admin.await.context("the admin listener failed")?.context("the admin listener failed")?;
    }
    for task in tasks {
        task.await.context("a platform's task failed")??;
    }
    if let Some(delivery) = delivery {
        delivery.task.await.context("the delivery worker failed")?;
        let counters = delivery.worker.counters();
        let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            delivered = count(&counters.delivered),
            retried = count(&counters.retried),
            gave_up = count(&counters.gave_up),
            "delivery: stopped"
        );
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP: reload the flow file; running conversations finish on their version.
async fn reload_on_hangup(service: Arc<Service>, path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            let result = match FlowSource::read(path.as_deref()) {
                Ok(source) => service
                    .reload(&source.text, &source.origin, service.now())
                    .await
                    .map_err(anyhow::Error::from),
                Err(err) => Err(err),
            };
            match result {
                Ok(version) => tracing::info!(%version, "flow reloaded"),
                Err(err) => tracing::error!("flow not reloaded, the running one stays: {err:#}"),
            }
        }
    }
    #[cfg(not(unix))]
    drop((service, path));
}
