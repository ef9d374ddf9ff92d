//! Slack as the binary lists it: its settings (flags and environment variables) and the
//! [`Platform`] contract.

use std::sync::Arc;

use async_trait::async_trait;
use flowbot_adapter::{About, Deliver, Link, Platform, PlatformError, Running, Secret};
use flowbot_store::Service;
use tokio_util::sync::CancellationToken;

use crate::{Config, Slack};

/// What Slack is to the binary.
pub const ABOUT: About = About {
    name: crate::SINK,
    limits: &crate::render::LIMITS,
    enable_hint: "SLACK_BOT_TOKEN with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET \
                  (HTTP) to run on Slack",
};

/// Slack's settings.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct Options {
    /// Slack: the bot token (xoxb-…).
    #[arg(long, env = "SLACK_BOT_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<Secret>,
    /// Slack: the app-level token (xapp-…): events come over Socket Mode (no public URL).
    #[arg(long, env = "SLACK_APP_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub slack_app_token: Option<Secret>,
    /// Slack: the signing secret: events come to /slack/events, /slack/interactions and
    /// /slack/commands on the listener (HTTP mode).
    #[arg(long, env = "SLACK_SIGNING_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub slack_signing_secret: Option<Secret>,
    /// Slack: a base URL standing in for https://slack.com/api (a proxy).
    #[arg(long, env = "SLACK_API_URL", value_name = "URL")]
    pub slack_api_url: Option<String>,
    /// Slack: the slash command's name (without the /).
    #[arg(long, env = "SLACK_COMMAND", value_name = "NAME", default_value = "gmis")]
    pub slack_command: String,
    /// Slack: the app's id, for `flowbot link`.
    #[arg(long, env = "SLACK_APP_ID", value_name = "ID")]
    pub slack_app_id: Option<String>,
    /// Slack: the workspace's (team's) id, for `flowbot link`.
    #[arg(long, env = "SLACK_TEAM_ID", value_name = "ID")]
    pub slack_team_id: Option<String>,
}

fn set(secret: &Option<Secret>) -> Option<Secret> {
    secret.clone().filter(|s| !s.is_empty())
}

#[async_trait]
impl Platform for Options {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn enabled(&self) -> bool {
        set(&self.slack_bot_token).is_some()
    }

    async fn start(&self, service: Arc<Service>) -> Result<Arc<dyn Running>, PlatformError> {
        let config = Config {
            bot_token: self.slack_bot_token.clone().unwrap_or_default(),
            app_token: set(&self.slack_app_token),
            signing_secret: set(&self.slack_signing_secret),
            api_url: self.slack_api_url.clone().filter(|u| !u.is_empty()),
            command: self.slack_command.clone(),
        };
        if config.app_token.is_none() && config.signing_secret.is_none() {
            return Err(PlatformError::new(
                "SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) nor \
                 SLACK_SIGNING_SECRET (HTTP): Slack has no way to reach the bot",
            ));
        }
        let slack = Slack::new(&config, service)
            .map_err(|e| PlatformError::new(format!("cannot start the Slack bot: {e}")))?;
        let endpoint = config.signing_secret.is_some();
        if endpoint {
            tracing::info!(
                "slack: HTTP endpoints at {}, {} and {}",
                crate::EVENTS_PATH,
                crate::INTERACTIONS_PATH,
                crate::COMMANDS_PATH
            );
        }
        Ok(Arc::new(Started { slack, endpoint }))
    }

    fn link(&self, entry: Option<&str>) -> Result<Link, PlatformError> {
        let (Some(app), Some(team)) = (&self.slack_app_id, &self.slack_team_id) else {
            return Err(PlatformError::new(
                "a Slack link needs the app and workspace ids: --slack-app-id and \
                 --slack-team-id (SLACK_APP_ID, SLACK_TEAM_ID)",
            ));
        };
        let url = format!("https://slack.com/app_redirect?app={app}&team={team}");
        let command = match entry {
            Some(entry) => format!("/{} {entry}", self.slack_command),
            None => format!("/{}", self.slack_command),
        };
        Ok(Link { url, note: Some(format!("then type in Slack: {command}")) })
    }
}

/// A started Slack bot: the HTTP endpoints and/or Socket Mode, replies, hand-off channels.
#[derive(Debug)]
struct Started {
    slack: Slack,
    /// Requests come to the HTTP endpoints.
    endpoint: bool,
}

#[async_trait]
impl Running for Started {
    fn routes(&self) -> Option<axum::Router> {
        self.endpoint.then(|| self.slack.router())
    }

    fn replies(&self) -> Option<Arc<dyn Deliver>> {
        Some(Arc::new(self.slack.replies()))
    }

    fn handoff(&self, target: &str) -> Option<Arc<dyn Deliver>> {
        let valid = target.is_empty()
            || target
                .split(':')
                .next()
                .is_some_and(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric()));
        Some(if valid {
            Arc::new(HandoffChannel { slack: self.slack.clone(), target: target.to_owned() })
        } else {
            Arc::new(flowbot_adapter::Refuse("not a Slack channel id"))
        })
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), PlatformError> {
        self.slack.run_socket_mode(shutdown.clone()).await.map_err(PlatformError::new)?;
        shutdown.cancelled().await;
        Ok(())
    }
}

/// A hand-off destination: a Slack channel (or a conversation's thread) that receives
/// requests as text. Every failure is retried (with the hand-off's long pauses).
#[derive(Debug)]
struct HandoffChannel {
    slack: Slack,
    target: String,
}

#[async_trait]
impl Deliver for HandoffChannel {
    async fn deliver(&self, item: &flowbot_core::Queued) -> Result<(), flowbot_adapter::Failed> {
        use flowbot_adapter::{Failed, Verdict};
        let Some(request) = &item.request else {
            return Err(Failed::new(Verdict::GiveUp, "not a hand-off request"));
        };
        self.slack
            .send_handoff(&self.target, &request.text)
            .await
            .map_err(|error| Failed::new(Verdict::Backoff, error))
    }
}
