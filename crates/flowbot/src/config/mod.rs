//! Deployment settings: the TOML file named by `--config` / `FLOWBOT_CONFIG`, with environment
//! overrides, checked as a whole before anything starts.
//!
//! ```toml
//! [prefecture]
//! name = "福島県"
//! [desk]                      # the 窓口 shown in every ending that sends the user there
//! name = "保健福祉部 地域医療課"
//! phone = "024-521-0000"
//! mail = "desk@pref.example.jp"
//! hours = "平日 8:30〜17:15"
//! [notes]                     # prefecture-specific remarks: `cause3` fills `{{cause3_note}}`
//! cause3 = "←福島県の場合、このケースは該当ありません。"
//! [retention]
//! personal_data_days = 90     # hand-off requests and form drafts; `flowbot purge` deletes older
//! [handoff]
//! retry_first_seconds = 30    # the first retry of a failed delivery; doubling up to…
//! retry_max_seconds = 3600
//! lease_seconds = 10          # a worker's hold on what it sends, renewed while it runs: a killed
//!                             # process's replies and requests are taken over after this
//! [delivery]
//! give_up_after_seconds = 3600 # a reply the platform has not taken by then is given up (logged)
//! [[handoff.destinations]]
//! kind = "webhook"            # or "telegram" (chat_id) or "discord" (channel_id)
//! url = "https://desk.example.jp/flowbot"
//! secret_env = "DESK_WEBHOOK_SECRET"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::Context;
use flowbot_core::{Flow, Params, is_email};
use serde::Deserialize;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The shortest webhook secret accepted, in bytes.
const MIN_SECRET: usize = 16;
/// A failed hand-off delivery's first pause, doubling up to the next.
const DEFAULT_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(30);
const DEFAULT_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60 * 60);
/// A reply its platform has not taken by then is given up on.
const DEFAULT_GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// A TOML syntax error without the source snippet, which could quote a secret.
fn syntax_error(path: &Path, text: &str, err: &toml::de::Error) -> anyhow::Error {
    let at = err.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(":{line}:{column}")
    });
    anyhow::anyhow!(
        "invalid configuration file {}{}: {}",
        path.display(),
        at.unwrap_or_default(),
        err.message()
    )
}

/// The settings of one deployment. Absent file: every flow runs on its parameters' defaults,
/// and submitted forms are only shown to the user to send.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Values for the flows' declared `params`. After loading, this also holds the values
    /// the sections below set (`prefecture`, `desk_*`, `*_note`).
    #[serde(default)]
    pub params: Params,
    #[serde(default)]
    pub prefecture: Prefecture,
    #[serde(default)]
    pub desk: Desk,
    /// `name = text` fills the flow parameter `{name}_note`.
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
    #[serde(default)]
    pub handoff: Handoff,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub delivery: DeliverySettings,
}

/// How stored replies are delivered.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// A reply not taken by its platform this long after its step is given up on: counted and
    /// logged, never silently dropped.
    pub give_up_after_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefecture {
    pub name: Option<String>,
}

/// The prefecture's help desk (窓口).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desk {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub mail: Option<String>,
    pub hours: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    #[serde(default)]
    pub destinations: Vec<Destination>,
    pub retry_first_seconds: Option<f64>,
    pub retry_max_seconds: Option<f64>,
    /// How long the delivery worker's hold on an item lasts; it is renewed while the process
    /// runs, so a process that dies delays what it held by at most this.
    pub lease_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub personal_data_days: Option<u64>,
}

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
}

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
        };
        name.as_deref().unwrap_or(kind)
    }

    /// A destination on a messenger: the platform's name (its `kind`) and the chat or channel.
    pub fn platform_target(&self) -> Option<(&'static str, i64)> {
        match self {
            Destination::Webhook { .. } => None,
            Destination::Telegram { chat_id, .. } => Some((self.kind(), *chat_id)),
            Destination::Discord { channel_id, .. } => {
                Some((self.kind(), i64::try_from(*channel_id).unwrap_or(i64::MAX)))
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Destination::Webhook { .. } => "webhook",
            Destination::Telegram { .. } => "telegram",
            Destination::Discord { .. } => "discord",
        }
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
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .field("handoff", &self.handoff)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads the file (if any), applies the environment's overrides and checks everything.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_with(path, |name| std::env::var(name).ok())
    }

    fn load_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the configuration file {}", path.display())
                })?;
                toml::from_str(&text).map_err(|err| syntax_error(path, &text, &err))?
            }
        };
        let mut problems = config.override_from(&env);
        problems.extend(config.validate());
        let origin = path.map_or_else(|| "the environment".to_owned(), |p| p.display().to_string());
        if !problems.is_empty() {
            anyhow::bail!("invalid settings in {origin}:\n  {}", problems.join("\n  "));
        }
        config.merge_params()?;
        Ok(config)
    }

    /// `FLOWBOT_PREFECTURE`, `FLOWBOT_DESK_{NAME,PHONE,MAIL,HOURS}`, `FLOWBOT_RETENTION_DAYS`,
    /// `FLOWBOT_HANDOFF_RETRY_SECONDS`, and one destination of a kind replacing the file's:
    /// `FLOWBOT_HANDOFF_WEBHOOK_URL` (+ `FLOWBOT_HANDOFF_WEBHOOK_SECRET`),
    /// `FLOWBOT_HANDOFF_TELEGRAM_CHAT`, `FLOWBOT_HANDOFF_DISCORD_CHANNEL`.
    fn override_from(&mut self, env: &impl Fn(&str) -> Option<String>) -> Vec<String> {
        let mut problems = Vec::new();
        let set = |slot: &mut Option<String>, name: &str| {
            if let Some(v) = env(name) {
                *slot = Some(v);
            }
        };
        set(&mut self.prefecture.name, "FLOWBOT_PREFECTURE");
        set(&mut self.desk.name, "FLOWBOT_DESK_NAME");
        set(&mut self.desk.phone, "FLOWBOT_DESK_PHONE");
        set(&mut self.desk.mail, "FLOWBOT_DESK_MAIL");
        set(&mut self.desk.hours, "FLOWBOT_DESK_HOURS");
        let mut parse = |name: &str, what: &str| -> Option<String> {
            let value = env(name)?;
            let ok = value.trim().parse::<f64>().is_ok_and(f64::is_finite);
            if !ok {
                problems.push(format!("{name} is not {what}"));
            }
            ok.then(|| value.trim().to_owned())
        };
        let days = parse("FLOWBOT_RETENTION_DAYS", "a whole number of days");
        let retry = parse("FLOWBOT_HANDOFF_RETRY_SECONDS", "a number of seconds");
        let chat = parse("FLOWBOT_HANDOFF_TELEGRAM_CHAT", "a Telegram chat id");
        let channel = parse("FLOWBOT_HANDOFF_DISCORD_CHANNEL", "a Discord channel id");
        if let Some(days) = days {
            match days.parse::<u64>() {
                Ok(days) => self.retention.personal_data_days = Some(days),
                Err(_) => {
                    problems.push("FLOWBOT_RETENTION_DAYS is not a whole number of days".into())
                }
            }
        }
        if let Some(seconds) = retry.and_then(|s| s.parse().ok()) {
            self.handoff.retry_first_seconds = Some(seconds);
        }
        let mut replace = |kind: &str, destination: Destination| {
            self.handoff.destinations.retain(|d| d.kind() != kind);
            self.handoff.destinations.push(destination);
        };
        if let Some(url) = env("FLOWBOT_HANDOFF_WEBHOOK_URL") {
            let secret = env("FLOWBOT_HANDOFF_WEBHOOK_SECRET");
            replace("webhook", Destination::Webhook { name: None, url, secret, secret_env: None });
        }
        match chat.map(|c| c.parse::<i64>()) {
            Some(Ok(chat_id)) => replace("telegram", Destination::Telegram { name: None, chat_id }),
            Some(Err(_)) => {
                problems.push("FLOWBOT_HANDOFF_TELEGRAM_CHAT is not a Telegram chat id".into())
            }
            None => {}
        }
        match channel.map(|c| c.parse::<u64>()) {
            Some(Ok(channel_id)) => {
                replace("discord", Destination::Discord { name: None, channel_id })
            }
            Some(Err(_)) => {
                problems.push("FLOWBOT_HANDOFF_DISCORD_CHANNEL is not a Discord channel id".into())
            }
            None => {}
        }
        problems
    }

    /// Every problem at once.
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(mail) = &self.desk.mail
            && !is_email(mail.trim())
        {
            problems.push(format!("[desk] mail `{mail}` is not an e-mail address"));
        }
        for (name, value) in [
            ("[prefecture] name", &self.prefecture.name),
            ("[desk] name", &self.desk.name),
            ("[desk] phone", &self.desk.phone),
            ("[desk] hours", &self.desk.hours),
        ] {
            if value.as_ref().is_some_and(|v| v.contains('\n')) {
                problems.push(format!("{name} must be one line"));
            }
        }
        if let Some(days) = self.retention.personal_data_days
            && !(1..=3650).contains(&days)
        {
            problems.push(format!(
                "[retention] personal_data_days = {days}: keep personal data 1 to 3650 days"
            ));
        }
        let first = self.handoff.retry_first_seconds;
        let max = self.handoff.retry_max_seconds;
        let lease = self.handoff.lease_seconds;
        for (name, v) in
            [("retry_first_seconds", first), ("retry_max_seconds", max), ("lease_seconds", lease)]
        {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0 && v <= 86_400.0)
            {
                problems.push(format!("[handoff] {name} = {v}: use more than 0 and at most 86400"));
            }
        }
        if let (Some(first), Some(max)) = (first, max)
            && max < first
        {
            problems
                .push("[handoff] retry_max_seconds is less than retry_first_seconds".to_owned());
        }
        if let Some(v) = self.delivery.give_up_after_seconds
            && !(v.is_finite() && (1.0..=7.0 * 86_400.0).contains(&v))
        {
            problems.push(format!(
                "[delivery] give_up_after_seconds = {v}: use at least 1 and at most 604800"
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        for d in &self.handoff.destinations {
            let name = d.name();
            if names.contains(&name) {
                problems.push(format!("[[handoff.destinations]] two destinations are named `{name}`: give each a `name`"));
            }
            names.push(name);
            if name.is_empty() || name.len() > 64 {
                problems
                    .push(format!("[[handoff.destinations]] `{name}`: a name is 1 to 64 bytes"));
            }
            match d {
                Destination::Webhook { url, secret, secret_env, .. } => {
                    match url::Url::parse(url) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                        _ => problems.push(format!(
                            "[[handoff.destinations]] `{name}`: url `{url}` is not an http(s) URL"
                        )),
                    }
                    if secret.is_some() && secret_env.is_some() {
                        problems.push(format!("[[handoff.destinations]] `{name}`: give `secret` or `secret_env`, not both"));
                    }
                    match (d.secret(), secret_env) {
                        (None, Some(var)) => problems.push(format!(
                            "[[handoff.destinations]] `{name}`: the environment variable {var} (secret_env) is not set"
                        )),
                        (None, None) => problems.push(format!(
                            "[[handoff.destinations]] `{name}`: a webhook needs a signing secret (`secret_env`, `secret` or FLOWBOT_HANDOFF_WEBHOOK_SECRET)"
                        )),
                        (Some(s), _) if s.len() < MIN_SECRET => problems.push(format!(
                            "[[handoff.destinations]] `{name}`: the signing secret is shorter than {MIN_SECRET} bytes"
                        )),
                        _ => {}
                    }
                }
                Destination::Telegram { chat_id, .. } if *chat_id == 0 => problems
                    .push(format!("[[handoff.destinations]] `{name}`: chat_id 0 is not a chat")),
                Destination::Discord { channel_id, .. } if *channel_id == 0 => problems.push(
                    format!("[[handoff.destinations]] `{name}`: channel_id 0 is not a channel"),
                ),
                _ => {}
            }
        }
        problems
    }

    /// Folds the prefecture, desk and notes into `params`, refusing a value set twice.
    fn merge_params(&mut self) -> anyhow::Result<()> {
        let mut set = vec![
            ("prefecture".to_owned(), self.prefecture.name.clone()),
            ("desk_name".to_owned(), self.desk.name.clone()),
            ("desk_phone".to_owned(), self.desk.phone.clone()),
            ("desk_mail".to_owned(), self.desk.mail.as_ref().map(|m| m.trim().to_owned())),
            ("desk_hours".to_owned(), self.desk.hours.clone()),
        ];
        for (note, text) in &self.notes {
            set.push((format!("{note}_note"), Some(text.clone())));
        }
        for (param, value) in set {
            let Some(value) = value else { continue };
            anyhow::ensure!(
                !self.params.contains_key(&param),
                "the configuration sets `{param}` twice: in [params] and in its own section"
            );
            self.params.insert(param, value);
        }
        Ok(())
    }

    /// How long personal data is kept, in milliseconds (default 90 days).
    pub fn personal_data_ms(&self) -> u64 {
        self.retention.personal_data_days.unwrap_or(90) * DAY_MS
    }

    /// How hand-off deliveries are retried: doubling pauses from `retry_first_seconds` (30 s)
    /// up to `retry_max_seconds` (1 h), parked in the store between attempts, never given up.
    pub fn handoff_route(&self) -> flowbot_adapter::Route {
        let secs = std::time::Duration::from_secs_f64;
        let first = self.handoff.retry_first_seconds.map_or(DEFAULT_RETRY_FIRST, secs);
        let max = self.handoff.retry_max_seconds.map_or(DEFAULT_RETRY_MAX, secs);
        flowbot_adapter::Route {
            policy: flowbot_adapter::RetryPolicy {
                first,
                max: max.max(first),
                ..flowbot_adapter::RetryPolicy::CALL
            },
            give_up_after: None,
            park: true,
        }
    }

    /// How a platform's stored replies are retried: the call policy's pauses, given up after
    /// `[delivery] give_up_after_seconds` (1 h).
    pub fn reply_route(&self) -> flowbot_adapter::Route {
        let give_up = self
            .delivery
            .give_up_after_seconds
            .map_or(DEFAULT_GIVE_UP_AFTER, std::time::Duration::from_secs_f64);
        flowbot_adapter::Route::replies(give_up)
    }

    /// The delivery worker's lease and polling.
    pub fn worker_options(&self) -> flowbot_adapter::WorkerOptions {
        let defaults = flowbot_adapter::WorkerOptions::default();
        let lease =
            self.handoff.lease_seconds.map_or(defaults.lease, std::time::Duration::from_secs_f64);
        let first = self
            .handoff
            .retry_first_seconds
            .map_or(DEFAULT_RETRY_FIRST, std::time::Duration::from_secs_f64);
        flowbot_adapter::WorkerOptions { lease, poll: defaults.poll.min(first), ..defaults }
    }

    /// Refuses parameter values that none of `flows` declares (most likely a misspelt name).
    pub fn check_params<'a>(
        &self,
        flows: impl IntoIterator<Item = &'a Flow> + Clone,
    ) -> anyhow::Result<()> {
        let unknown: Vec<&str> = self
            .params
            .keys()
            .filter(|name| !flows.clone().into_iter().any(|f| f.params().contains(name)))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let declared: Vec<String> =
            flows.into_iter().map(|f| format!("{}: {}", f.id(), f.params().join(", "))).collect();
        anyhow::bail!(
            "the configuration sets parameter{} {} that no flow declares (declared: {})",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            declared.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("flowbot.toml");
        std::fs::write(&path, toml)?;
        let env: BTreeMap<String, String> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load_with(Some(&path), |name| env.get(name).cloned())
    }

    #[test]
    fn sections_become_parameters() {
        let c = load(
            "[prefecture]\nname = \"福島県\"\n[desk]\nphone = \"024\"\nmail = \" desk@pref.example.jp \"\n[notes]\ncause3 = \"注\"\n",
            &[("FLOWBOT_DESK_NAME", "窓口")],
        )
        .unwrap();
        assert_eq!(c.params["prefecture"], "福島県");
        assert_eq!(c.params["desk_name"], "窓口");
        assert_eq!(c.params["desk_mail"], "desk@pref.example.jp");
        assert_eq!(c.params["cause3_note"], "注");
        assert!(!c.params.contains_key("desk_hours"));
        assert_eq!(c.personal_data_ms(), 90 * DAY_MS);
    }

    #[test]
    fn every_bad_setting_is_listed_and_secrets_are_not() {
        let err = load(
            "[desk]\nmail = \"desk\"\n[retention]\npersonal_data_days = 0\n[handoff]\nretry_first_seconds = -1\n\
             [[handoff.destinations]]\nkind = \"webhook\"\nurl = \"ftp://x\"\nsecret = \"short-secret-xyz\"\n\
             [[handoff.destinations]]\nkind = \"webhook\"\nurl = \"https://desk.example.jp/\"\nsecret = \"tiny\"\n",
            &[],
        )
        .unwrap_err();
        let text = format!("{err:#}");
        for want in [
            "mail `desk`",
            "personal_data_days = 0",
            "retry_first_seconds = -1",
            "`ftp://x` is not an http(s) URL",
            "two destinations are named `webhook`",
            "shorter than 16 bytes",
        ] {
            assert!(text.contains(want), "missing {want:?} in {text}");
        }
        assert!(!text.contains("short-secret-xyz") && !text.contains("tiny"), "{text}");
    }

    #[test]
    fn environment_overrides_destinations() {
        let c = load(
            "[[handoff.destinations]]\nkind = \"webhook\"\nurl = \"https://a.example/\"\nsecret_env = \"NOPE_UNSET_FLOWBOT\"\n",
            &[
                ("FLOWBOT_HANDOFF_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
                ("FLOWBOT_HANDOFF_WEBHOOK_SECRET", "0123456789abcdef"),
                ("FLOWBOT_HANDOFF_TELEGRAM_CHAT", "-1001"),
                ("FLOWBOT_RETENTION_DAYS", "7"),
            ],
        )
        .unwrap();
        let names: Vec<&str> = c.handoff.destinations.iter().map(Destination::name).collect();
        assert_eq!(names, ["webhook", "telegram"]);
        assert_eq!(c.personal_data_ms(), 7 * DAY_MS);
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        assert!(load("[params]\ndesk_name = \"a\"\n[desk]\nname = \"b\"\n", &[]).is_err());
        assert!(load("[handoff]\nunknown = 1\n", &[]).is_err());
        let timing =
            load("[handoff]\nretry_first_seconds = 0.5\nlease_seconds = 5\n", &[]).unwrap();
        assert_eq!(timing.worker_options().lease, std::time::Duration::from_secs(5));
        assert_eq!(timing.handoff_route().policy.first, std::time::Duration::from_millis(500));
        assert!(timing.handoff_route().park);
        assert!(load("[delivery]\ngive_up_after_seconds = 0\n", &[]).is_err());
        assert!(load("[handoff]\nlease_seconds = 0\n", &[]).is_err());
    }

    #[test]
    fn a_syntax_error_does_not_quote_the_file() {
        let err = load(
            "[[handoff.destinations]]\nkind = \"webhook\"\nsecret = \"TOPSECRET-0123456789\n",
            &[],
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("flowbot.toml:3:"), "{text}");
        assert!(!text.contains("TOPSECRET"), "{text}");
    }

    #[test]
    fn bad_environment_values_are_listed_with_the_file_problems() {
        let err = load(
            "[desk]\nmail = \"nope\"\n",
            &[("FLOWBOT_RETENTION_DAYS", "abc"), ("FLOWBOT_HANDOFF_DISCORD_CHANNEL", "-5")],
        )
        .unwrap_err();
        let text = format!("{err:#}");
        for want in ["FLOWBOT_RETENTION_DAYS", "FLOWBOT_HANDOFF_DISCORD_CHANNEL", "mail `nope`"] {
            assert!(text.contains(want), "missing {want:?} in {text}");
        }
    }
}
