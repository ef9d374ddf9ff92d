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
//! [store]
//! sqlite_synchronous = "normal" # or "full": a committed step survives a power cut too
//! [[handoff.destinations]]
//! kind = "webhook"            # or "telegram" (chat_id) or "discord" (channel_id)
//! url = "https://desk.example.jp/flowbot"
//! secret_env = "DESK_WEBHOOK_SECRET"
//! ```

mod lines;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::Context;
use flowbot_core::{Deployment, Flow, Limits, ParamOrigins, Params, ValueOrigin, is_email};
use flowbot_store::Synchronous;
use serde::Deserialize;

use lines::{Lines, MAX_SETTINGS_BYTES, MAX_VALUE_BYTES};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The shortest webhook secret accepted, in bytes.
const MIN_SECRET: usize = 16;
/// A failed hand-off delivery's first pause, doubling up to the next.
const DEFAULT_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(30);
const DEFAULT_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60 * 60);
/// A reply its platform has not taken by then is given up on.
const DEFAULT_GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// The settings file's text: at most [`MAX_SETTINGS_BYTES`] read, and UTF-8.
fn read_settings(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let cannot = || format!("cannot read the configuration file {}", path.display());
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_SETTINGS_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    std::fs::File::open(path)
        .with_context(cannot)?
        .take(limit)
        .read_to_end(&mut bytes)
        .with_context(cannot)?;
    anyhow::ensure!(
        bytes.len() <= MAX_SETTINGS_BYTES,
        "{}:1: the settings file is larger than the {MAX_SETTINGS_BYTES} bytes allowed",
        path.display()
    );
    String::from_utf8(bytes).map_err(|e| {
        match flowbot_core::source_text(e.as_bytes(), &path.display().to_string()) {
            Err(problem) => anyhow::anyhow!("invalid configuration file {problem}"),
            Ok(_) => anyhow::anyhow!("{} is not UTF-8", path.display()),
        }
    })
}

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
    /// The web chat's limits and proxy header.
    #[serde(default)]
    pub web: flowbot_web::Settings,
    #[serde(default)]
    pub store: StoreSettings,
    /// Where each parameter value was set (the settings file's line, or the environment).
    #[serde(skip)]
    param_origins: ParamOrigins,
    /// The parameters and settings the environment set, with the variable (`desk_name`:
    /// `FLOWBOT_DESK_NAME`).
    #[serde(skip)]
    from_env: BTreeMap<&'static str, &'static str>,
    /// Per destination, the environment variable it came from, if it did.
    #[serde(skip)]
    destination_env: Vec<Option<&'static str>>,
}

/// How the store keeps what it is given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// SQLite's durability: "normal" (the default) or "full".
    pub sqlite_synchronous: Option<String>,
}

/// One problem with the settings, and where: a key of the file (a dotted path, whose line is
/// looked up) or an environment variable.
#[derive(Debug)]
struct Problem {
    at: At,
    message: String,
}

#[derive(Debug)]
enum At {
    Key(String),
    Env(&'static str),
}

impl Problem {
    fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { at: At::Key(key.into()), message: message.into() }
    }

    fn env(var: &'static str, message: impl Into<String>) -> Self {
        Problem { at: At::Env(var), message: message.into() }
    }

    /// `FILE:LINE: message`, or `environment variable NAME: message`.
    fn render(&self, file: Option<&Path>, lines: &Lines) -> String {
        match (&self.at, file) {
            (At::Env(var), _) => format!("environment variable {var}: {}", self.message),
            (At::Key(key), Some(file)) => {
                let line = lines.of(key).unwrap_or(1);
                format!("{}:{line}: {}", file.display(), self.message)
            }
            (At::Key(_), None) => self.message.clone(),
        }
    }
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

    pub(crate) fn load_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let (mut config, lines, mut problems) = match path {
            None => (Config::default(), Lines::default(), Vec::new()),
            Some(path) => {
                let text = read_settings(path)?;
                let config: Config =
                    toml::from_str(&text).map_err(|err| syntax_error(path, &text, &err))?;
                let (lines, too_large) = Lines::parse(&text);
                let problems = too_large.into_iter().map(|(k, m)| Problem::key(k, m)).collect();
                (config, lines, problems)
            }
        };
        problems.extend(config.override_from(&env));
        problems.extend(config.validate());
        problems.extend(config.merge_params());
        if !problems.is_empty() {
            let listed: Vec<String> = problems.iter().map(|p| p.render(path, &lines)).collect();
            let n = listed.len();
            anyhow::bail!(
                "invalid settings ({n} problem{}):\n  {}",
                if n == 1 { "" } else { "s" },
                listed.join("\n  ")
            );
        }
        config.param_origins = config.origins(path, &lines);
        Ok(config)
    }

    /// `FLOWBOT_PREFECTURE`, `FLOWBOT_DESK_{NAME,PHONE,MAIL,HOURS}`, `FLOWBOT_RETENTION_DAYS`,
    /// `FLOWBOT_HANDOFF_RETRY_SECONDS`, and one destination of a kind replacing the file's:
    /// `FLOWBOT_HANDOFF_WEBHOOK_URL` (+ `FLOWBOT_HANDOFF_WEBHOOK_SECRET`),
    /// `FLOWBOT_HANDOFF_TELEGRAM_CHAT`, `FLOWBOT_HANDOFF_DISCORD_CHANNEL`.
    fn override_from(&mut self, env: &impl Fn(&str) -> Option<String>) -> Vec<Problem> {
        let mut problems = Vec::new();
        // Every value the environment gives is bounded like the file's.
        let env = |name: &'static str| -> Result<Option<String>, Problem> {
            match env(name) {
                Some(v) if v.len() > MAX_VALUE_BYTES => Err(Problem::env(
                    name,
                    format!("{} bytes; a setting may be at most {MAX_VALUE_BYTES}", v.len()),
                )),
                v => Ok(v),
            }
        };
        let mut read = |name: &'static str| {
            env(name).unwrap_or_else(|p| {
                problems.push(p);
                None
            })
        };
        for (param, var, slot) in [
            ("prefecture", "FLOWBOT_PREFECTURE", &mut self.prefecture.name),
            ("desk_name", "FLOWBOT_DESK_NAME", &mut self.desk.name),
            ("desk_phone", "FLOWBOT_DESK_PHONE", &mut self.desk.phone),
            ("desk_mail", "FLOWBOT_DESK_MAIL", &mut self.desk.mail),
            ("desk_hours", "FLOWBOT_DESK_HOURS", &mut self.desk.hours),
        ] {
            if let Some(v) = read(var) {
                *slot = Some(v);
                self.from_env.insert(param, var);
            }
        }
        let synchronous = read("FLOWBOT_SQLITE_SYNCHRONOUS");
        let webhook_url = read("FLOWBOT_HANDOFF_WEBHOOK_URL");
        let webhook_secret = read("FLOWBOT_HANDOFF_WEBHOOK_SECRET");
        let mut raw = BTreeMap::new();
        for var in [
            "FLOWBOT_RETENTION_DAYS",
            "FLOWBOT_HANDOFF_RETRY_SECONDS",
            "FLOWBOT_HANDOFF_TELEGRAM_CHAT",
            "FLOWBOT_HANDOFF_DISCORD_CHANNEL",
        ] {
            raw.insert(var, read(var));
        }
        if let Some(v) = synchronous {
            self.store.sqlite_synchronous = Some(v);
            self.from_env.insert("sqlite_synchronous", "FLOWBOT_SQLITE_SYNCHRONOUS");
        }
        self.destination_env = vec![None; self.handoff.destinations.len()];
        let mut parse = |name: &'static str, what: &str| -> Option<String> {
            let value = raw.remove(name).flatten()?;
            let ok = value.trim().parse::<f64>().is_ok_and(f64::is_finite);
            if !ok {
                problems.push(Problem::env(name, format!("{name} is not {what}")));
            }
            ok.then(|| value.trim().to_owned())
        };
        let days = parse("FLOWBOT_RETENTION_DAYS", "a whole number of days");
        let retry = parse("FLOWBOT_HANDOFF_RETRY_SECONDS", "a number of seconds");
        let chat = parse("FLOWBOT_HANDOFF_TELEGRAM_CHAT", "a Telegram chat id");
        let channel = parse("FLOWBOT_HANDOFF_DISCORD_CHANNEL", "a Discord channel id");
        if let Some(days) = days {
            match days.parse::<u64>() {
                Ok(days) => {
                    self.retention.personal_data_days = Some(days);
                    self.from_env.insert("personal_data_days", "FLOWBOT_RETENTION_DAYS");
                }
                Err(_) => problems.push(Problem::env(
                    "FLOWBOT_RETENTION_DAYS",
                    "FLOWBOT_RETENTION_DAYS is not a whole number of days",
                )),
            }
        }
        if let Some(seconds) = retry.and_then(|s| s.parse().ok()) {
            self.handoff.retry_first_seconds = Some(seconds);
            self.from_env.insert("retry_first_seconds", "FLOWBOT_HANDOFF_RETRY_SECONDS");
        }
        let destinations = &mut self.handoff.destinations;
        let origins = &mut self.destination_env;
        let mut replace = |kind: &str, var: &'static str, destination: Destination| {
            let mut i = 0;
            destinations.retain(|d| {
                let keep = d.kind() != kind;
                if !keep {
                    origins.remove(i);
                } else {
                    i += 1;
                }
                keep
            });
            destinations.push(destination);
            origins.push(Some(var));
        };
        if let Some(url) = webhook_url {
            let destination =
                Destination::Webhook { name: None, url, secret: webhook_secret, secret_env: None };
            replace("webhook", "FLOWBOT_HANDOFF_WEBHOOK_URL", destination);
        }
        let chat_var = "FLOWBOT_HANDOFF_TELEGRAM_CHAT";
        match chat.map(|c| c.parse::<i64>()) {
            Some(Ok(chat_id)) => {
                replace("telegram", chat_var, Destination::Telegram { name: None, chat_id })
            }
            Some(Err(_)) => problems
                .push(Problem::env(chat_var, format!("{chat_var} is not a Telegram chat id"))),
            None => {}
        }
        let channel_var = "FLOWBOT_HANDOFF_DISCORD_CHANNEL";
        match channel.map(|c| c.parse::<u64>()) {
            Some(Ok(channel_id)) => {
                replace("discord", channel_var, Destination::Discord { name: None, channel_id })
            }
            Some(Err(_)) => problems.push(Problem::env(
                channel_var,
                format!("{channel_var} is not a Discord channel id"),
            )),
            None => {}
        }
        problems
    }

    /// Every problem at once, each with the key it is about.
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut key = |key: &str, message: String| problems.push(self.problem_at(key, message));
        if let Some(mail) = &self.desk.mail
            && !is_email(mail.trim())
        {
            key("desk.mail", format!("[desk] mail `{mail}` is not an e-mail address"));
        }
        for (name, path, value) in [
            ("[prefecture] name", "prefecture.name", &self.prefecture.name),
            ("[desk] name", "desk.name", &self.desk.name),
            ("[desk] phone", "desk.phone", &self.desk.phone),
            ("[desk] hours", "desk.hours", &self.desk.hours),
        ] {
            if value.as_ref().is_some_and(|v| v.contains('\n')) {
                key(path, format!("{name} must be one line"));
            }
        }
        if let Some(days) = self.retention.personal_data_days
            && !(1..=3650).contains(&days)
        {
            key(
                "retention.personal_data_days",
                format!(
                    "[retention] personal_data_days = {days}: keep personal data 1 to 3650 days"
                ),
            );
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
                key(
                    &format!("handoff.{name}"),
                    format!("[handoff] {name} = {v}: use more than 0 and at most 86400"),
                );
            }
        }
        if let (Some(first), Some(max)) = (first, max)
            && max < first
        {
            key(
                "handoff.retry_max_seconds",
                "[handoff] retry_max_seconds is less than retry_first_seconds".to_owned(),
            );
        }
        if let Some(v) = self.delivery.give_up_after_seconds
            && !(v.is_finite() && (1.0..=7.0 * 86_400.0).contains(&v))
        {
            key(
                "delivery.give_up_after_seconds",
                format!(
                    "[delivery] give_up_after_seconds = {v}: use at least 1 and at most 604800"
                ),
            );
        }
        if let Some(v) = &self.store.sqlite_synchronous
            && let Err(message) = v.parse::<Synchronous>()
        {
            key("store.sqlite_synchronous", format!("[store] sqlite_synchronous {message}"));
        }
        for (setting, message) in self.web.problems() {
            key(&format!("web.{setting}"), format!("[web] {message}"));
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, d) in self.handoff.destinations.iter().enumerate() {
            let mut problem = |message: String| {
                let message = format!("[[handoff.destinations]] {message}");
                problems.push(match self.destination_env.get(i).copied().flatten() {
                    Some(var) => Problem::env(var, message),
                    None => Problem::key(format!("handoff.destinations.{i}"), message),
                });
            };
            let name = d.name();
            if names.contains(&name) {
                problem(format!("two destinations are named `{name}`: give each a `name`"));
            }
            names.push(name);
            if name.is_empty() || name.len() > 64 {
                problem(format!("`{name}`: a name is 1 to 64 bytes"));
            }
            match d {
                Destination::Webhook { url, secret, secret_env, .. } => {
                    match url::Url::parse(url) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                        _ => problem(format!("`{name}`: url `{url}` is not an http(s) URL")),
                    }
                    if secret.is_some() && secret_env.is_some() {
                        problem(format!("`{name}`: give `secret` or `secret_env`, not both"));
                    }
                    match (d.secret(), secret_env) {
                        (None, Some(var)) => problem(format!(
                            "`{name}`: the environment variable {var} (secret_env) is not set"
                        )),
                        (None, None) => problem(format!(
                            "`{name}`: a webhook needs a signing secret (`secret_env`, `secret` or FLOWBOT_HANDOFF_WEBHOOK_SECRET)"
                        )),
                        (Some(s), _) if s.len() < MIN_SECRET => problem(format!(
                            "`{name}`: the signing secret is shorter than {MIN_SECRET} bytes"
                        )),
                        _ => {}
                    }
                }
                Destination::Telegram { chat_id, .. } if *chat_id == 0 => {
                    problem(format!("`{name}`: chat_id 0 is not a chat"))
                }
                Destination::Discord { channel_id, .. } if *channel_id == 0 => {
                    problem(format!("`{name}`: channel_id 0 is not a channel"))
                }
                _ => {}
            }
        }
        problems
    }

    /// A problem about `key` of the file, or about the environment variable that set it.
    fn problem_at(&self, key: &str, message: String) -> Problem {
        let param = match key {
            "prefecture.name" => "prefecture",
            "desk.name" => "desk_name",
            "desk.phone" => "desk_phone",
            "desk.mail" => "desk_mail",
            "desk.hours" => "desk_hours",
            "store.sqlite_synchronous" => "sqlite_synchronous",
            "retention.personal_data_days" => "personal_data_days",
            "handoff.retry_first_seconds" => "retry_first_seconds",
            _ => "",
        };
        match self.from_env.get(param) {
            Some(var) => Problem::env(var, message),
            None => Problem::key(key, message),
        }
    }

    /// The parameter values the sections set, with the key each comes from.
    fn section_params(&self) -> Vec<(String, Option<String>, String)> {
        let mut set = vec![
            ("prefecture".to_owned(), self.prefecture.name.clone(), "prefecture.name".to_owned()),
            ("desk_name".to_owned(), self.desk.name.clone(), "desk.name".to_owned()),
            ("desk_phone".to_owned(), self.desk.phone.clone(), "desk.phone".to_owned()),
            (
                "desk_mail".to_owned(),
                self.desk.mail.as_ref().map(|m| m.trim().to_owned()),
                "desk.mail".to_owned(),
            ),
            ("desk_hours".to_owned(), self.desk.hours.clone(), "desk.hours".to_owned()),
        ];
        for (note, text) in &self.notes {
            set.push((format!("{note}_note"), Some(text.clone()), format!("notes.{note}")));
        }
        set
    }

    /// Folds the prefecture, desk and notes into `params`, refusing a value set twice.
    fn merge_params(&mut self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (param, value, key) in self.section_params() {
            let Some(value) = value else { continue };
            if self.params.contains_key(&param) {
                problems.push(Problem::key(
                    format!("params.{param}"),
                    format!(
                        "the configuration sets `{param}` twice: in [params] and in its own section ({key})"
                    ),
                ));
                continue;
            }
            self.params.insert(param, value);
        }
        problems
    }

    /// Where each parameter value was set.
    fn origins(&self, path: Option<&Path>, lines: &Lines) -> ParamOrigins {
        let file = path.map(|p| p.display().to_string());
        let mut keys: BTreeMap<String, String> =
            self.params.keys().map(|name| (name.clone(), format!("params.{name}"))).collect();
        for (param, _, key) in self.section_params() {
            keys.insert(param, key);
        }
        keys.into_iter()
            .filter(|(param, _)| self.params.contains_key(param))
            .map(|(param, key)| {
                let origin = match (self.from_env.get(param.as_str()), &file) {
                    (Some(var), _) => {
                        ValueOrigin { file: format!("environment variable {var}"), line: None }
                    }
                    (None, Some(file)) => ValueOrigin { file: file.clone(), line: lines.of(&key) },
                    (None, None) => ValueOrigin { file: "the settings".to_owned(), line: None },
                };
                (param, origin)
            })
            .collect()
    }

    /// What loading a flow needs of this deployment: the parameter values, where they were set,
    /// and the platforms' `limits`.
    pub fn deployment<'a>(&'a self, limits: &'a [&'a Limits]) -> Deployment<'a> {
        Deployment { params: &self.params, origins: &self.param_origins, limits }
    }

    pub fn param_origins(&self) -> &ParamOrigins {
        &self.param_origins
    }

    /// SQLite's durability (`[store] sqlite_synchronous`, `FLOWBOT_SQLITE_SYNCHRONOUS`).
    pub fn sqlite_synchronous(&self) -> Synchronous {
        self.store.sqlite_synchronous.as_deref().and_then(|v| v.parse().ok()).unwrap_or_default()
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
    fn durability_is_a_setting() {
        assert_eq!(load("", &[]).unwrap().sqlite_synchronous(), Synchronous::Normal);
        let full = load("[store]\nsqlite_synchronous = \"full\"\n", &[]).unwrap();
        assert_eq!(full.sqlite_synchronous(), Synchronous::Full);
        let env = load(
            "[store]\nsqlite_synchronous = \"full\"\n",
            &[("FLOWBOT_SQLITE_SYNCHRONOUS", "normal")],
        );
        assert_eq!(env.unwrap().sqlite_synchronous(), Synchronous::Normal);
        let err = load("[store]\nsqlite_synchronous = \"off\"\n", &[]).unwrap_err();
        assert!(
            format!("{err}").contains("flowbot.toml:2: [store] sqlite_synchronous `off`"),
            "{err}"
        );
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
