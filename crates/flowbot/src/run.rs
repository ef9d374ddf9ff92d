//! `flowbot run`: the bot on the configured messengers, with the shared HTTP listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use flowbot_discord::{Config as DiscordConfig, Discord};
use flowbot_store::Service;
use flowbot_telegram::{Config as TelegramConfig, Telegram, default_webhook_secret};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::flows::FlowSource;
use crate::store::{StoreArgs, now};

/// The listener's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flow file to run (default: the embedded G-MIS flow); SIGHUP reloads it.
    #[arg(long, value_name = "FILE")]
    flow: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// The HTTP listener shared by webhooks and the health check (`GET /healthz`).
    #[arg(long, env = "FLOWBOT_LISTEN", value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Telegram: the bot token from BotFather. Prefer the environment variable to the flag.
    #[arg(long, env = "TELEGRAM_BOT_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    telegram_bot_token: Option<String>,
    /// Telegram: the Bot API server (default https://api.telegram.org).
    #[arg(long, env = "TELEGRAM_API_URL", value_name = "URL")]
    telegram_api_url: Option<url::Url>,
    /// Telegram: receive updates by webhook at this public URL (it must reach
    /// `/telegram/webhook` on the listener) instead of long polling.
    #[arg(long, env = "TELEGRAM_WEBHOOK_URL", value_name = "URL")]
    telegram_webhook_url: Option<url::Url>,
    /// Telegram: the webhook's secret token (default: derived from the bot token, so every
    /// replica agrees).
    #[arg(long, env = "TELEGRAM_WEBHOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    telegram_webhook_secret: Option<String>,
    /// Discord: the bot token (the gateway's login, and follow-up messages in HTTP mode).
    #[arg(long, env = "DISCORD_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    discord_token: Option<String>,
    /// Discord: the application id (asked of Discord when not given).
    #[arg(long, env = "DISCORD_APPLICATION_ID", value_name = "ID")]
    discord_application_id: Option<u64>,
    /// Discord: the application's public key. With it, interactions come to
    /// `/discord/interactions` on the listener (HTTP mode) instead of over the gateway.
    #[arg(long, env = "DISCORD_PUBLIC_KEY", value_name = "HEX")]
    discord_public_key: Option<String>,
    /// Discord: a base URL standing in for https://discord.com (a proxy).
    #[arg(long, env = "DISCORD_API_URL", value_name = "URL")]
    discord_api_url: Option<String>,
    /// Discord: the slash command's name.
    #[arg(long, env = "DISCORD_COMMAND", value_name = "NAME", default_value = "gmis")]
    discord_command: String,
    /// Discord: register the command in this guild (immediately) instead of globally.
    #[arg(long, env = "DISCORD_GUILD_ID", value_name = "ID")]
    discord_guild_id: Option<u64>,
    /// The web chat: serve the flow as a page at `/chat` on the listener.
    #[arg(long, env = "FLOWBOT_WEB")]
    web: bool,
    /// The web chat's public address (e.g. https://bot.pref.example.jp), when it is served
    /// behind a proxy: an https address marks the session cookie Secure.
    #[arg(long, env = "FLOWBOT_WEB_URL", value_name = "URL")]
    web_url: Option<url::Url>,
}

impl RunArgs {
    fn telegram_token(&self) -> Option<&str> {
        self.telegram_bot_token.as_deref().map(str::trim).filter(|t| !t.is_empty())
    }
}

pub async fn run(args: RunArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let telegram_token = args.telegram_token().map(str::to_owned);
    let discord_token =
        args.discord_token.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    let web = args.web || args.web_url.is_some();
    if telegram_token.is_none() && discord_token.is_none() && !web {
        anyhow::bail!(
            "no messenger is configured: set TELEGRAM_BOT_TOKEN to run on Telegram, or \
             DISCORD_TOKEN (gateway) or DISCORD_TOKEN with DISCORD_APPLICATION_ID and \
             DISCORD_PUBLIC_KEY (HTTP interactions) to run on Discord, or FLOWBOT_WEB=true \
             (--web) for the web chat.\n\
             To try the flow without a messenger, run `flowbot chat`."
        );
    }
    let source = FlowSource::read(args.flow.as_deref())?;
    let service = args.store.service(&source, config).await?;
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

    let mut router = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let mut tasks = Vec::new();
    let mut messengers = crate::handoff::Messengers::default();
    let mut routes = crate::handoff::Routes::new();
    if let Some(token) = telegram_token {
        let telegram_config = TelegramConfig {
            token: token.clone(),
            api_url: args.telegram_api_url.clone(),
            poll_timeout: Duration::from_secs(10),
        };
        let telegram = Telegram::connect(&telegram_config, service.clone())
            .await
            .context("cannot start the Telegram bot (is TELEGRAM_BOT_TOKEN right?)")?;
        tracing::info!(bot = telegram.username(), "telegram: connected");
        messengers.telegram = Some(telegram.clone());
        routes.insert(
            flowbot_telegram::SINK.to_owned(),
            (Arc::new(telegram.replies()), config.reply_route()),
        );
        match &args.telegram_webhook_url {
            Some(url) => {
                let secret = args
                    .telegram_webhook_secret
                    .clone()
                    .unwrap_or_else(|| default_webhook_secret(&token));
                telegram
                    .set_webhook(url, &secret)
                    .await
                    .context("cannot set the Telegram webhook")?;
                router = router.merge(telegram.webhook_router(secret));
                tracing::info!(url = %url, "telegram: webhook set");
            }
            None => {
                let shutdown = shutdown.clone();
                tasks.push(tokio::spawn(async move {
                    telegram
                        .poll(telegram_config.poll_timeout, shutdown)
                        .await
                        .map_err(anyhow::Error::from)
                }));
            }
        }
    }
    if let Some(token) = discord_token {
        let discord_config = DiscordConfig {
            token: token.into(),
            clock: service.clock(),
            application_id: args.discord_application_id,
            public_key: args.discord_public_key.clone(),
            api_url: args.discord_api_url.clone(),
            command: args.discord_command.clone(),
            guild: args.discord_guild_id,
        };
        let discord = Discord::connect(&discord_config, service.clone()).await.context(
            "cannot start the Discord bot (are DISCORD_TOKEN and DISCORD_PUBLIC_KEY right?)",
        )?;
        discord.register_commands();
        messengers.discord = Some(discord.clone());
        if discord_config.public_key.is_some() {
            router = router.merge(discord.interactions_router());
            tracing::info!("discord: interactions endpoint at /discord/interactions");
        } else {
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                discord
                    .run_gateway(shutdown)
                    .await
                    .map_err(|e| anyhow::anyhow!("discord gateway: {e}"))
            }));
        }
    }

    if web {
        let secure = args.web_url.as_ref().is_some_and(|u| u.scheme() == "https");
        router = router.merge(flowbot_web::Web::new(service.clone(), secure).router());
        tracing::info!(path = flowbot_web::CHAT_PATH, "web: chat page served");
    }
    routes.extend(crate::handoff::routes(config, &messengers, &service.clock())?);
    let delivery = crate::handoff::start(&service, config, routes, shutdown.clone());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!("http: listening on {address}");
    let server = axum::serve(listener, router).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    });
    server.await.context("the HTTP listener failed")?;
    for task in tasks {
        task.await.context("a messenger task failed")??;
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
                    .reload(&source.text, &source.origin, now())
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
