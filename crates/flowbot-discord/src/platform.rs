//! Discord as the binary lists it: its settings (flags and environment variables) and the
//! [`Platform`] contract.

use std::sync::Arc;

use async_trait::async_trait;
use flowbot_adapter::{About, Deliver, Link, Platform, PlatformError, Running, Secret};
use flowbot_store::Service;
use tokio_util::sync::CancellationToken;

use crate::{Config, Discord};

/// What Discord is to the binary.
pub const ABOUT: About = About {
    name: crate::SINK,
    limits: &crate::render::LIMITS,
    enable_hint: "DISCORD_TOKEN (gateway) or DISCORD_TOKEN with DISCORD_APPLICATION_ID and \
                  DISCORD_PUBLIC_KEY (HTTP interactions) to run on Discord",
};

/// Discord's settings.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct Options {
    /// Discord: the bot token (the gateway's login, and follow-up messages in HTTP mode).
    #[arg(long, env = "DISCORD_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub discord_token: Option<Secret>,
    /// Discord: the application id (asked of Discord when not given; `flowbot link` needs it).
    #[arg(long, env = "DISCORD_APPLICATION_ID", value_name = "ID")]
    pub discord_application_id: Option<u64>,
    /// Discord: the application's public key. With it, interactions come to
    /// `/discord/interactions` on the listener (HTTP mode) instead of over the gateway.
    #[arg(long, env = "DISCORD_PUBLIC_KEY", value_name = "HEX")]
    pub discord_public_key: Option<String>,
    /// Discord: a base URL standing in for https://discord.com (a proxy).
    #[arg(long, env = "DISCORD_API_URL", value_name = "URL")]
    pub discord_api_url: Option<String>,
    /// Discord: the slash command's name.
    #[arg(long, env = "DISCORD_COMMAND", value_name = "NAME", default_value = "gmis")]
    pub discord_command: String,
    /// Discord: register the command in this guild (immediately) instead of globally.
    #[arg(long, env = "DISCORD_GUILD_ID", value_name = "ID")]
    pub discord_guild_id: Option<u64>,
}

#[async_trait]
impl Platform for Options {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn enabled(&self) -> bool {
        self.discord_token.as_ref().is_some_and(|t| !t.is_empty())
    }

    async fn start(&self, service: Arc<Service>) -> Result<Arc<dyn Running>, PlatformError> {
        let config = Config {
            token: self.discord_token.clone().unwrap_or_default(),
            application_id: self.discord_application_id,
            public_key: self.discord_public_key.clone(),
            api_url: self.discord_api_url.clone(),
            command: self.discord_command.clone(),
            guild: self.discord_guild_id,
            clock: service.clock(),
        };
        let discord = Discord::connect(&config, service).await.map_err(|e| {
            PlatformError::new(format!(
                "cannot start the Discord bot (are DISCORD_TOKEN and DISCORD_PUBLIC_KEY right?): {e}"
            ))
        })?;
        discord.register_commands();
        let endpoint = config.public_key.is_some();
        if endpoint {
            tracing::info!("discord: interactions endpoint at {}", crate::INTERACTIONS_PATH);
        }
        Ok(Arc::new(Started { discord, endpoint }))
    }

    fn link(&self, entry: Option<&str>) -> Result<Link, PlatformError> {
        let id = self.discord_application_id.ok_or_else(|| {
            PlatformError::new(
                "a Discord link needs the application id: --discord-application-id or DISCORD_APPLICATION_ID",
            )
        })?;
        let url = format!(
            "https://discord.com/oauth2/authorize?client_id={id}&scope=bot+applications.commands"
        );
        let command = match entry {
            Some(entry) => format!("/{} start:{entry}", self.discord_command),
            None => format!("/{}", self.discord_command),
        };
        Ok(Link { url, note: Some(format!("then type in Discord: {command}")) })
    }
}

/// A started Discord bot: the interactions endpoint or the gateway, replies, hand-off channels.
#[derive(Debug)]
struct Started {
    discord: Discord,
    /// Interactions come to the HTTP endpoint (else over the gateway).
    endpoint: bool,
}

#[async_trait]
impl Running for Started {
    fn routes(&self) -> Option<axum::Router> {
        self.endpoint.then(|| self.discord.interactions_router())
    }

    fn replies(&self) -> Option<Arc<dyn Deliver>> {
        Some(Arc::new(self.discord.replies()))
    }

    fn handoff(&self, channel: &str) -> Option<Arc<dyn Deliver>> {
        Some(match channel.parse() {
            Ok(channel) => Arc::new(HandoffChannel { discord: self.discord.clone(), channel }),
            Err(_) => Arc::new(flowbot_adapter::Refuse("not a Discord channel id")),
        })
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), PlatformError> {
        if self.endpoint {
            shutdown.cancelled().await;
            return Ok(());
        }
        self.discord
            .run_gateway(shutdown)
            .await
            .map_err(|e| PlatformError::new(format!("discord gateway: {e}")))
    }
}

/// A hand-off destination: a Discord channel that receives requests as text. Every failure
/// is retried (with the hand-off's long pauses).
#[derive(Debug)]
struct HandoffChannel {
    discord: Discord,
    channel: u64,
}

#[async_trait]
impl Deliver for HandoffChannel {
    async fn deliver(&self, item: &flowbot_core::Queued) -> Result<(), flowbot_adapter::Failed> {
        use flowbot_adapter::{Failed, Verdict};
        let Some(request) = &item.request else {
            return Err(Failed::new(Verdict::GiveUp, "not a hand-off request"));
        };
        self.discord
            .send_handoff(self.channel, &request.text)
            .await
            .map_err(|error| Failed::new(Verdict::Backoff, error))
    }
}
