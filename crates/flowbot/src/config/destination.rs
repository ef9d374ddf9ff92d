//! Hand-off destinations as the settings file names them (`[[handoff.destinations]]`): webhook,
//! Telegram chat, Discord channel, Slack channel, LINE user or group, mail and LINE WORKS, their
//! serde shape, what each hands to its delivery crate, and their `Debug` without secrets. Their
//! checks are in the parent module.

use std::fmt;

use serde::Deserialize;

/// Where a submitted request is delivered.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Destination {
    /// An HTTP POST of the request as JSON, signed with HMAC-SHA256.
    Webhook {
        name: Option<String>,
        url: String,
        /// The signing key itself, or (better) the environment variable holding it.
        secret: Option<String>,
        secret_env: Option<String>,
    },
    /// A Telegram chat the bot is a member of (needs `TELEGRAM_BOT_TOKEN`).
    Telegram { name: Option<String>, chat_id: i64 },
    /// A Discord channel the bot may post in (needs `DISCORD_TOKEN`).
    Discord { name: Option<String>, channel_id: u64 },
    /// A Slack channel the bot is a member of (needs `SLACK_BOT_TOKEN`).
    Slack { name: Option<String>, channel_id: String },
    /// A LINE user or group the bot pushes to (needs the LINE channel's settings).
    Line { name: Option<String>, to: String },
    /// A mailbox: the request's text sent over SMTP (`flowbot_mail`).
    Mail {
        name: Option<String>,
        /// One address or a list.
        #[serde(deserialize_with = "one_or_many")]
        to: Vec<String>,
        from: String,
        /// `smtps://HOST:465`, `smtp://HOST:587` (STARTTLS), `smtp://127.0.0.1:25?tls=none`.
        smtp_url: String,
        user: Option<String>,
        /// The environment variable holding the SMTP password (default
        /// `FLOWBOT_SMTP_PASSWORD`).
        password_env: Option<String>,
        /// The password, read from the environment when the settings load.
        #[serde(skip)]
        password: Option<flowbot_adapter::Secret>,
        /// A private CA (PEM) the server's certificate may be signed by, besides the public
        /// roots; read and checked when the settings load.
        ca_file: Option<String>,
        /// The CA, or why `ca_file` cannot be used (`None` without `ca_file`).
        #[serde(skip)]
        ca: Option<Result<flowbot_mail::Ca, String>>,
    },
    /// A LINE WORKS channel (or one member) the desk's bot posts in (`flowbot_lineworks`).
    Lineworks {
        name: Option<String>,
        #[serde(deserialize_with = "text_or_number")]
        bot_id: String,
        /// Exactly one of the two.
        #[serde(default, deserialize_with = "some_text_or_number")]
        channel_id: Option<String>,
        #[serde(default, deserialize_with = "some_text_or_number")]
        user_id: Option<String>,
        /// The app's Client ID (Developer Console).
        client_id: String,
        /// The environment variable holding the app's Client Secret.
        client_secret_env: String,
        /// The app's service account.
        service_account: String,
        /// The service account's private key (PEM), read and checked when the settings load.
        private_key_file: String,
        /// The secret, the key and the endpoints, read when the settings load.
        #[serde(skip)]
        loaded: LineworksLoaded,
    },
}

/// What a LINE WORKS destination takes from outside the settings file.
#[derive(Default)]
pub struct LineworksLoaded {
    pub(super) client_secret: Option<flowbot_adapter::Secret>,
    /// The key, or why the file cannot be used (`None` before loading).
    pub(super) key: Option<Result<std::sync::Arc<flowbot_lineworks::PrivateKey>, String>>,
    pub(super) api_url: String,
    pub(super) auth_url: String,
}

/// `bot_id = 2000001` or `bot_id = "2000001"`.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Number(u64),
    }
    Ok(match TextOrNumber::deserialize(d)? {
        TextOrNumber::Text(text) => text,
        TextOrNumber::Number(n) => n.to_string(),
    })
}

fn some_text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    text_or_number(d).map(Some)
}

/// The LINE WORKS endpoints, for a test's fake (or a proxy).
pub(super) const LINEWORKS_API_URL: &str = "LINEWORKS_API_URL";
pub(super) const LINEWORKS_AUTH_URL: &str = "LINEWORKS_AUTH_URL";
/// The largest private key file read.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// `to = "a@b.jp"` or `to = ["a@b.jp", "c@d.jp"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// The mail destination's password, unless its `password_env` names another variable.
pub(super) const SMTP_PASSWORD: &str = "FLOWBOT_SMTP_PASSWORD";
/// The `ca_file` of the mail destination the environment makes.
pub(super) const SMTP_CA_FILE: &str = "FLOWBOT_SMTP_CA_FILE";

impl Destination {
    /// The destination's name in the store and the logs: `name`, or its kind.
    /// The delivery worker's sink for this destination: `handoff:NAME`, apart from the
    /// platforms' own reply sinks (a destination may be named `telegram`).
    pub fn sink(&self) -> String {
        format!("handoff:{}", self.name())
    }

    pub fn name(&self) -> &str {
        let (name, kind) = match self {
            Destination::Webhook { name, .. } => (name, "webhook"),
            Destination::Telegram { name, .. } => (name, "telegram"),
            Destination::Discord { name, .. } => (name, "discord"),
            Destination::Slack { name, .. } => (name, "slack"),
            Destination::Line { name, .. } => (name, "line"),
            Destination::Mail { name, .. } => (name, "mail"),
            Destination::Lineworks { name, .. } => (name, "lineworks"),
        };
        name.as_deref().unwrap_or(kind)
    }

    /// A destination on a messenger: the platform's name (its `kind`) and the chat, channel
    /// or user, as that platform writes its ids.
    pub fn platform_target(&self) -> Option<(&'static str, String)> {
        let target = match self {
            Destination::Webhook { .. }
            | Destination::Mail { .. }
            | Destination::Lineworks { .. } => return None,
            Destination::Telegram { chat_id, .. } => chat_id.to_string(),
            Destination::Discord { channel_id, .. } => channel_id.to_string(),
            Destination::Slack { channel_id, .. } => channel_id.clone(),
            Destination::Line { to, .. } => to.clone(),
        };
        Some((self.kind(), target))
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Destination::Webhook { .. } => "webhook",
            Destination::Telegram { .. } => "telegram",
            Destination::Discord { .. } => "discord",
            Destination::Slack { .. } => "slack",
            Destination::Line { .. } => "line",
            Destination::Mail { .. } => "mail",
            Destination::Lineworks { .. } => "lineworks",
        }
    }

    /// A mail destination's settings for its sink (the password read when the settings loaded).
    pub fn mail(&self) -> Option<flowbot_mail::Settings> {
        let Destination::Mail { to, from, smtp_url, user, password, ca, .. } = self else {
            return None;
        };
        Some(flowbot_mail::Settings {
            to: to.clone(),
            from: from.clone(),
            smtp_url: smtp_url.clone(),
            user: user.clone(),
            password: password.clone(),
            ca: ca.clone().and_then(Result::ok),
        })
    }

    /// A LINE WORKS destination's settings for its sink, once the secret and the key loaded.
    pub fn lineworks(&self) -> Option<flowbot_lineworks::Settings> {
        let Destination::Lineworks {
            bot_id,
            channel_id,
            user_id,
            client_id,
            service_account,
            loaded,
            ..
        } = self
        else {
            return None;
        };
        let target = match (channel_id, user_id) {
            (Some(channel), None) => flowbot_lineworks::Target::Channel(channel.clone()),
            (None, Some(user)) => flowbot_lineworks::Target::User(user.clone()),
            _ => return None,
        };
        let Some(Ok(key)) = &loaded.key else { return None };
        Some(flowbot_lineworks::Settings {
            bot_id: bot_id.clone(),
            target,
            client_id: client_id.clone(),
            client_secret: loaded.client_secret.clone()?,
            service_account: service_account.clone(),
            key: key.clone(),
            api_url: loaded.api_url.clone(),
            auth_url: loaded.auth_url.clone(),
        })
    }

    /// The webhook's signing key, from the file or the environment.
    pub fn secret(&self) -> Option<String> {
        let Destination::Webhook { secret, secret_env, .. } = self else { return None };
        secret.clone().or_else(|| secret_env.as_deref().and_then(|v| std::env::var(v).ok()))
    }
}

// Secrets stay out of every log line and error message.
impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Webhook { name, url, secret_env, .. } => f
                .debug_struct("Webhook")
                .field("name", name)
                .field("url", url)
                .field("secret", &"<redacted>")
                .field("secret_env", secret_env)
                .finish(),
            Destination::Telegram { name, chat_id } => {
                f.debug_struct("Telegram").field("name", name).field("chat_id", chat_id).finish()
            }
            Destination::Discord { name, channel_id } => f
                .debug_struct("Discord")
                .field("name", name)
                .field("channel_id", channel_id)
                .finish(),
            Destination::Slack { name, channel_id } => {
                f.debug_struct("Slack").field("name", name).field("channel_id", channel_id).finish()
            }
            Destination::Line { name, to } => {
                f.debug_struct("Line").field("name", name).field("to", to).finish()
            }
            Destination::Mail { name, to, from, smtp_url, user, password_env, ca_file, .. } => f
                .debug_struct("Mail")
                .field("name", name)
                .field("to", to)
                .field("from", from)
                .field("smtp_url", smtp_url)
                .field("user", user)
                .field("password", &"<redacted>")
                .field("password_env", password_env)
                .field("ca_file", ca_file)
                .finish(),
            Destination::Lineworks {
                name,
                bot_id,
                channel_id,
                user_id,
                client_id,
                client_secret_env,
                service_account,
                private_key_file,
                ..
            } => f
                .debug_struct("Lineworks")
                .field("name", name)
                .field("bot_id", bot_id)
                .field("channel_id", channel_id)
                .field("user_id", user_id)
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .field("client_secret_env", client_secret_env)
                .field("service_account", service_account)
                .field("private_key_file", private_key_file)
                .finish(),
        }
    }
}

/// The private key in `path`, or why it cannot be used (never quoting the file).
pub(super) fn read_key(
    path: &str,
) -> Result<std::sync::Arc<flowbot_lineworks::PrivateKey>, String> {
    use std::io::Read;
    let cannot = |err: std::io::Error| format!("cannot read the private key file {path}: {err}");
    let mut bytes = Vec::new();
    std::fs::File::open(path.trim())
        .map_err(cannot)?
        .take(MAX_KEY_FILE)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    // A binary (DER) file has no PEM block, and says so.
    flowbot_lineworks::PrivateKey::from_pem(&String::from_utf8_lossy(&bytes))
        .map(std::sync::Arc::new)
        .map_err(|err| format!("the private key file {path}: {err}"))
}
