//! Socket Mode: slack-morphism's client opens a WebSocket with `apps.connections.open` (the app
//! token) and acknowledges each envelope once its callback returns. The callbacks hand Slack's
//! JSON to the shared handler, as the HTTP mode does. A callback that fails (the store) returns
//! an error, so the envelope is not acknowledged and Slack delivers it again.

use std::sync::Arc;

use slack_morphism::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::Slack;
use crate::api::Connector;

type Client = Arc<SlackClient<Connector>>;
type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

impl Slack {
    /// Runs Socket Mode until `shutdown`.
    pub async fn run_socket_mode(
        &self,
        shutdown: CancellationToken,
    ) -> std::result::Result<(), String> {
        let Some(app_token) = &self.inner.app_token else { return Ok(()) };
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_push_events(on_push)
            .with_interaction_events(on_interaction)
            .with_command_events(on_command);
        let environment = Arc::new(
            SlackClientEventsListenerEnvironment::new(self.inner.api.client.clone())
                .with_error_handler(on_error)
                .with_user_state(self.clone()),
        );
        let config = SlackClientSocketModeConfig::new().with_max_connections_count(1);
        let listener = SlackClientSocketModeListener::new(&config, environment, callbacks);
        let token = SlackApiToken::new(app_token.expose().to_owned().into());
        listener
            .listen_for(&token)
            .await
            .map_err(|e| format!("slack socket mode: {}", app_token.redact(&e)))?;
        listener.start().await;
        tracing::info!("slack: socket mode connected");
        shutdown.cancelled().await;
        listener.shutdown().await;
        Ok(())
    }
}

async fn slack(states: &SlackClientEventsUserState) -> Option<Slack> {
    states.read().await.get_user_state::<Slack>().cloned()
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<()> {
    let Some(slack) = slack(&states).await else { return Ok(()) };
    let callback = serde_json::to_value(&event)?;
    slack.on_event(&callback).await?;
    Ok(())
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<SlackInteractionResponse> {
    let Some(slack) = slack(&states).await else { return Ok(().into()) };
    let payload = serde_json::to_value(&event)?;
    Ok(match slack.on_interaction(&payload).await? {
        Some(response) => {
            SlackInteractionResponse::ViewSubmission(serde_json::from_value(response)?)
        }
        None => ().into(),
    })
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Client,
    states: SlackClientEventsUserState,
) -> Result<SlackCommandEventResponse> {
    let Some(slack) = slack(&states).await else {
        return Ok(SlackCommandEventResponse::new(SlackMessageContent::new()));
    };
    let command = serde_json::to_value(&event)?;
    let content = match slack.on_command(&command).await? {
        Some(text) => SlackMessageContent::new().with_text(crate::mrkdwn(&text)),
        None => SlackMessageContent::new(),
    };
    Ok(SlackCommandEventResponse::new(content)
        .with_response_type(SlackMessageResponseType::Ephemeral))
}

fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Client,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    tracing::error!(error = %err, "slack: socket mode event not handled");
    HttpStatusCode::INTERNAL_SERVER_ERROR
}
