//! The platforms flowbot runs on: the one list the binary loops over. A new platform is one
//! field here (its settings, flattened into `flowbot run` and `flowbot link`) and its entry in
//! [`Platforms::all`].

use flowbot_adapter::Platform;

/// Every platform's settings.
#[derive(Debug, Default, clap::Args)]
pub struct Platforms {
    #[command(flatten, next_help_heading = "Telegram")]
    telegram: flowbot_telegram::Options,
    #[command(flatten, next_help_heading = "Discord")]
    discord: flowbot_discord::Options,
    #[command(flatten, next_help_heading = "Slack")]
    slack: flowbot_slack::Options,
    #[command(flatten, next_help_heading = "Web chat")]
    web: flowbot_web::Options,
    #[command(flatten, next_help_heading = "LINE")]
    line: flowbot_line::Options,
}

impl Platforms {
    /// Every platform, in the order they start.
    pub fn all(&self) -> [&dyn Platform; 5] {
        [&self.telegram, &self.discord, &self.slack, &self.web, &self.line]
    }

    /// Hands the settings file's sections to the platforms that read one.
    pub fn configure(&mut self, config: &crate::config::Config) {
        self.web.settings = config.web.clone();
    }

    /// The platform named `name`.
    pub fn find(&self, name: &str) -> Option<&dyn Platform> {
        self.all().into_iter().find(|p| p.about().name == name)
    }

    /// Every platform's name, for messages.
    pub fn names(&self) -> Vec<&'static str> {
        self.all().iter().map(|p| p.about().name).collect()
    }
}

/// The limits of every platform flowbot knows, enabled or not (`flowbot check`).
pub fn known_limits() -> Vec<&'static flowbot_core::Limits> {
    Platforms::default().all().iter().map(|p| p.about().limits).collect()
}
