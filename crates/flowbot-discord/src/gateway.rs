//! The gateway mode: a serenity `Client` on Discord's WebSocket, whose `interaction_create`
//! calls the shared handler and answers over REST. The answer's content is stored with the
//! step too, and sent from the store should the answer fail (see [`crate::deliver`]).

use serenity::all::{ClientBuilder, Context, EventHandler, GatewayIntents, Interaction, Ready};

use crate::handler::Mode;
use crate::{Discord, http_builder};

impl Discord {
    /// Runs the gateway until `shutdown`: interactions arrive over the WebSocket.
    pub async fn run_gateway(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), serenity::Error> {
        let handler = GatewayHandler { discord: self.clone() };
        // The client needs an HTTP client of its own, set up like ours (it asks it for the
        // gateway's address, through the same proxy).
        let http = http_builder(
            &self.inner.token,
            self.inner.http.application_id(),
            self.inner.api_url.as_deref(),
        );
        let mut client = ClientBuilder::new_with_http(http.build(), GatewayIntents::empty())
            .event_handler(handler)
            .await?;
        let manager = client.shard_manager.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            manager.shutdown_all().await;
        });
        client.start().await
    }
}

struct GatewayHandler {
    discord: Discord,
}

#[serenity::async_trait]
impl EventHandler for GatewayHandler {
    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        let (id, token) = match &interaction {
            Interaction::Command(c) | Interaction::Autocomplete(c) => (c.id, c.token.clone()),
            Interaction::Component(c) => (c.id, c.token.clone()),
            Interaction::Modal(m) => (m.id, m.token.clone()),
            _ => return,
        };
        let responses = &self.discord.inner.responses;
        // Before the step commits: its stored answer waits for how this one went.
        responses.begin(&token);
        let answer = match self.discord.answer(interaction, Mode::Gateway).await {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                responses.forget(&token);
                return;
            }
            Err(err) => {
                responses.forget(&token);
                tracing::error!(error = %err, "discord: interaction not handled");
                return;
            }
        };
        let answered = self.discord.respond(id, &token, &answer.response).await;
        if answer.stored {
            responses.finish(&token, answered);
        } else {
            responses.forget(&token);
        }
    }

    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, "discord: gateway ready");
    }
}
