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
//! [runtime]
//! worker_threads = 1          # threads running the async work (SQLite's connections have their own)
//! [[handoff.destinations]]
//! kind = "webhook"            # or "telegram" (chat_id), "discord" (channel_id), "mail",
//!                             # "lineworks" (bot_id, channel_id, client_id, …)
//! url = "https://desk.example.jp/flowbot"
//! secret_env = "DESK_WEBHOOK_SECRET"
//! ```

mod destination;
mod lines;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::Context;
use flowbot_core::{Deployment, Flow, Limits, ParamOrigins, Params, ValueOrigin, is_email};
use flowbot_store::Synchronous;
use serde::Deserialize;

pub use destination::Destination;
use destination::{LINEWORKS_API_URL, LINEWORKS_AUTH_URL, SMTP_CA_FILE, SMTP_PASSWORD, read_key};
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
/// A Slack channel id as Slack writes it: `C`, `G` or `D`, then capital letters and digits.
fn slack_channel(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('C' | 'G' | 'D'))
        && (2..=20).contains(&chars.clone().count())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A LINE push target: a user (`U…`), group (`C…`) or room (`R…`) id, 32 hexadecimal digits
/// after its letter.
fn line_target(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('U' | 'C' | 'R'))
        && id.len() == 33
        && chars.all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

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
    #[serde(default)]
    pub runtime: RuntimeSettings,
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

/// How the process runs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSettings {
    /// The async runtime's worker threads (default 1).
    pub worker_threads: Option<u64>,
}

/// The most worker threads accepted.
const MAX_WORKER_THREADS: u64 = 64;

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
    /// `FLOWBOT_HANDOFF_TELEGRAM_CHAT`, `FLOWBOT_HANDOFF_DISCORD_CHANNEL`,
    /// `FLOWBOT_HANDOFF_SLACK_CHANNEL`, `FLOWBOT_HANDOFF_LINE_TO`.
    fn override_from(&mut self, env: &impl Fn(&str) -> Option<String>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let lookup = env;
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
        let workers = read("FLOWBOT_WORKER_THREADS");
        let webhook_url = read("FLOWBOT_HANDOFF_WEBHOOK_URL");
        let webhook_secret = read("FLOWBOT_HANDOFF_WEBHOOK_SECRET");
        let slack_channel = read("FLOWBOT_HANDOFF_SLACK_CHANNEL");
        let line_to = read("FLOWBOT_HANDOFF_LINE_TO");
        let mail = [
            "FLOWBOT_HANDOFF_MAIL_TO",
            "FLOWBOT_HANDOFF_MAIL_FROM",
            "FLOWBOT_SMTP_URL",
            "FLOWBOT_SMTP_USER",
            SMTP_CA_FILE,
        ]
        .map(|var| (var, read(var)));
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
        if let Some(v) = workers {
            match v.trim().parse::<u64>() {
                Ok(n) => {
                    self.runtime.worker_threads = Some(n);
                    self.from_env.insert("worker_threads", "FLOWBOT_WORKER_THREADS");
                }
                Err(_) => problems.push(Problem::env(
                    "FLOWBOT_WORKER_THREADS",
                    "FLOWBOT_WORKER_THREADS is not a whole number of threads".to_owned(),
                )),
            }
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
        if let Some(channel_id) = slack_channel {
            let channel_id = channel_id.trim().to_owned();
            let destination = Destination::Slack { name: None, channel_id };
            replace("slack", "FLOWBOT_HANDOFF_SLACK_CHANNEL", destination);
        }
        if let Some(to) = line_to {
            let destination = Destination::Line { name: None, to: to.trim().to_owned() };
            replace("line", "FLOWBOT_HANDOFF_LINE_TO", destination);
        }
        problems.extend(self.mail_from(mail, lookup));
        problems.extend(self.lineworks_from(lookup));
        problems
    }

    /// The LINE WORKS endpoints (`LINEWORKS_API_URL`, `LINEWORKS_AUTH_URL`), and every LINE
    /// WORKS destination's client secret (from its `client_secret_env`) and private key (from
    /// its `private_key_file`, checked here so that a bad key is refused at start).
    fn lineworks_from(&mut self, env: &impl Fn(&str) -> Option<String>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut url = |var: &'static str, default: &str| match env(var) {
            None => default.to_owned(),
            Some(v) if v.len() > MAX_VALUE_BYTES => {
                problems.push(Problem::env(
                    var,
                    format!("{var} is longer than {MAX_VALUE_BYTES} bytes"),
                ));
                default.to_owned()
            }
            Some(v) => {
                if let Err(err) = flowbot_lineworks::send::check_url(&v) {
                    problems.push(Problem::env(var, err.to_string()));
                }
                v.trim().to_owned()
            }
        };
        let api_url = url(LINEWORKS_API_URL, flowbot_lineworks::DEFAULT_API_URL);
        let auth_url = url(LINEWORKS_AUTH_URL, flowbot_lineworks::DEFAULT_AUTH_URL);
        for d in &mut self.handoff.destinations {
            if let Destination::Lineworks { client_secret_env, private_key_file, loaded, .. } = d {
                loaded.client_secret = env(client_secret_env.trim())
                    .filter(|s| !s.trim().is_empty())
                    .map(flowbot_adapter::Secret::from);
                loaded.key = Some(read_key(private_key_file));
                loaded.api_url = api_url.clone();
                loaded.auth_url = auth_url.clone();
            }
        }
        problems
    }

    /// The mail destination of the environment (`FLOWBOT_HANDOFF_MAIL_TO`, `…_MAIL_FROM`,
    /// `FLOWBOT_SMTP_URL`, `FLOWBOT_SMTP_USER`, `FLOWBOT_SMTP_CA_FILE`), replacing the file's;
    /// and every mail destination's password, read from its `password_env` or
    /// `FLOWBOT_SMTP_PASSWORD`, and CA, read from its `ca_file`.
    fn mail_from(
        &mut self,
        vars: [(&'static str, Option<String>); 5],
        env: &impl Fn(&str) -> Option<String>,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        let [(to_var, to), (from_var, from), (url_var, url), (_, user), (_, ca_file)] = vars;
        match (to, from, url) {
            (Some(to), Some(from), Some(smtp_url)) => {
                let to = to.split(',').map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
                let destination = Destination::Mail {
                    name: None,
                    to: to.collect(),
                    from,
                    smtp_url,
                    user,
                    password_env: None,
                    password: None,
                    ca_file,
                    ca: None,
                };
                let mut kept = Vec::new();
                for (d, origin) in
                    self.handoff.destinations.drain(..).zip(self.destination_env.drain(..))
                {
                    if d.kind() != "mail" {
                        kept.push((d, origin));
                    }
                }
                kept.push((destination, Some(to_var)));
                (self.handoff.destinations, self.destination_env) = kept.into_iter().unzip();
            }
            (Some(_), from, url) => {
                for (var, value) in [(from_var, from), (url_var, url)] {
                    if value.is_none() {
                        problems.push(Problem::env(
                            to_var,
                            format!(
                                "{to_var} is set, and {var} is not: a mail destination needs both"
                            ),
                        ));
                    }
                }
            }
            (None, from, url) => {
                let set = [
                    (from_var, from.is_some()),
                    (url_var, url.is_some()),
                    ("FLOWBOT_SMTP_USER", user.is_some()),
                    (SMTP_CA_FILE, ca_file.is_some()),
                ];
                for (var, _) in set.into_iter().filter(|(_, set)| *set) {
                    problems.push(Problem::env(
                        var,
                        format!("{var} is set, and {to_var} is not: it is for the mail destination {to_var} makes"),
                    ));
                }
            }
        }
        for d in &mut self.handoff.destinations {
            if let Destination::Mail { user: Some(_), password_env, password, .. } = d {
                let var = password_env.as_deref().unwrap_or(SMTP_PASSWORD);
                *password = env(var).filter(|p| !p.is_empty()).map(flowbot_adapter::Secret::from);
            }
            if let Destination::Mail { ca_file: Some(file), ca, .. } = d {
                let read = flowbot_mail::Ca::read(Path::new(file.trim()));
                *ca = Some(read.map_err(|err| err.to_string()));
            }
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
        if let Some(n) = self.runtime.worker_threads
            && !(1..=MAX_WORKER_THREADS).contains(&n)
        {
            key(
                "runtime.worker_threads",
                format!(
                    "[runtime] worker_threads = {n}: use at least 1 and at most {MAX_WORKER_THREADS}"
                ),
            );
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
            let lineworks = self.lineworks_problems(i, d);
            let ca = self.mail_ca_problem(i, d);
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
                Destination::Mail { to, from, smtp_url, user, password_env, password, .. } => {
                    if to.is_empty() {
                        problem(format!("`{name}`: `to` names no recipient"));
                    }
                    for address in to.iter().chain([from]) {
                        if let Err(err) = flowbot_mail::check_address(address) {
                            problem(format!("`{name}`: {err}"));
                        }
                    }
                    if let Err(err) = flowbot_mail::Server::parse(smtp_url) {
                        problem(format!("`{name}`: {err}"));
                    }
                    match (user, password_env, password) {
                        (Some(user), _, _) if user.trim().is_empty() => {
                            problem(format!("`{name}`: `user` is empty"))
                        }
                        (Some(_), var, None) => problem(format!(
                            "`{name}`: the environment variable {} (the SMTP password) is not set",
                            var.as_deref().unwrap_or(SMTP_PASSWORD)
                        )),
                        (None, Some(_), _) => {
                            problem(format!("`{name}`: `password_env` is given without `user`"))
                        }
                        _ => {}
                    }
                }
                Destination::Telegram { chat_id, .. } if *chat_id == 0 => {
                    problem(format!("`{name}`: chat_id 0 is not a chat"))
                }
                Destination::Discord { channel_id, .. } if *channel_id == 0 => {
                    problem(format!("`{name}`: channel_id 0 is not a channel"))
                }
                Destination::Slack { channel_id, .. } if !slack_channel(channel_id) => {
                    problem(format!(
                        "`{name}`: channel_id `{channel_id}` is not a Slack channel id (C…, G… or D…, as the channel's details show it)"
                    ))
                }
                Destination::Line { to, .. } if !line_target(to) => problem(format!(
                    "`{name}`: to `{to}` is not a LINE user, group or room id (U…, C… or R… and 32 hexadecimal digits)"
                )),
                _ => {}
            }
            problems.extend(lineworks);
            problems.extend(ca);
        }
        problems
    }

    /// What is wrong with the `i`-th destination's `ca_file` if it is a mail one, at that key
    /// (or `FLOWBOT_SMTP_CA_FILE`).
    fn mail_ca_problem(&self, i: usize, d: &Destination) -> Option<Problem> {
        let Destination::Mail { smtp_url, ca_file: Some(_), ca, .. } = d else { return None };
        let message = match ca {
            Some(Err(err)) => err.clone(),
            _ if flowbot_mail::Server::parse(smtp_url)
                .is_ok_and(|s| s.security == flowbot_mail::Security::None) =>
            {
                "`ca_file` is given, and smtp_url uses no TLS (`tls=none`)".to_owned()
            }
            _ => return None,
        };
        let message = format!("[[handoff.destinations]] `{}`: {message}", d.name());
        Some(match self.destination_env.get(i).copied().flatten() {
            Some(_) => Problem::env(SMTP_CA_FILE, message),
            None => Problem::key(format!("handoff.destinations.{i}.ca_file"), message),
        })
    }

    /// What is wrong with the `i`-th destination if it is a LINE WORKS one, each at its key.
    fn lineworks_problems(&self, i: usize, d: &Destination) -> Vec<Problem> {
        let Destination::Lineworks {
            bot_id,
            channel_id,
            user_id,
            client_id,
            client_secret_env,
            service_account,
            private_key_file,
            loaded,
            ..
        } = d
        else {
            return Vec::new();
        };
        let name = d.name();
        let mut problems = Vec::new();
        let mut at = |field: &str, message: String| {
            let message = format!("[[handoff.destinations]] `{name}`: {message}");
            problems.push(Problem::key(format!("handoff.destinations.{i}.{field}"), message));
        };
        for (field, value) in [
            ("bot_id", Some(bot_id)),
            ("channel_id", channel_id.as_ref()),
            ("user_id", user_id.as_ref()),
            ("client_id", Some(client_id)),
            ("client_secret_env", Some(client_secret_env)),
            ("service_account", Some(service_account)),
            ("private_key_file", Some(private_key_file)),
        ] {
            if value.is_some_and(|v| v.trim().is_empty()) {
                at(field, format!("`{field}` is empty"));
            }
        }
        match (channel_id, user_id) {
            (Some(_), Some(_)) => at("user_id", "give `channel_id` or `user_id`, not both".into()),
            (None, None) => at(
                "bot_id",
                "LINE WORKS needs `channel_id` (a channel the bot is in) or `user_id` (one member)"
                    .into(),
            ),
            _ => {}
        }
        if loaded.client_secret.is_none() && !client_secret_env.trim().is_empty() {
            at(
                "client_secret_env",
                format!(
                    "the environment variable {} (the Client Secret) is not set",
                    client_secret_env.trim()
                ),
            );
        }
        if let Some(Err(err)) = &loaded.key {
            at("private_key_file", err.clone());
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
            "runtime.worker_threads" => "worker_threads",
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

    /// The async runtime's worker threads (`[runtime] worker_threads`,
    /// `FLOWBOT_WORKER_THREADS`; default 1). One is the measured best on the two-core machines
    /// this runs on: a second worker cost 13 % more CPU per conversation in the Telegram load
    /// test (the two waking each other) for no more conversations a second (BENCHMARKS.md).
    pub fn worker_threads(&self) -> usize {
        let n = self.runtime.worker_threads.unwrap_or(1).clamp(1, MAX_WORKER_THREADS);
        usize::try_from(n).unwrap_or(1)
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
    fn slack_and_line_destinations_are_checked_and_set_from_the_environment() {
        let c = load(
            "",
            &[
                ("FLOWBOT_HANDOFF_SLACK_CHANNEL", " C0123ABCD "),
                ("FLOWBOT_HANDOFF_LINE_TO", "Cabcdef0123456789abcdef0123456789"),
            ],
        )
        .unwrap();
        let targets: Vec<_> =
            c.handoff.destinations.iter().filter_map(Destination::platform_target).collect();
        assert_eq!(
            targets,
            [
                ("slack", "C0123ABCD".to_owned()),
                ("line", "Cabcdef0123456789abcdef0123456789".into())
            ]
        );
        let bad = load(
            "[[handoff.destinations]]\nkind = \"slack\"\nchannel_id = \"#desk\"\n\n\
             [[handoff.destinations]]\nkind = \"line\"\nto = \"@desk\"\n",
            &[],
        )
        .unwrap_err();
        let text = format!("{bad:#}");
        assert!(
            text.contains("flowbot.toml:1:") && text.contains("not a Slack channel id"),
            "{text}"
        );
        assert!(text.contains("flowbot.toml:5:") && text.contains("not a LINE user"), "{text}");
    }

    #[test]
    fn a_mail_ca_file_is_read_at_load_and_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let missing = dir.path().join("missing.pem");
        for (url, file, want) in [
            ("smtps://mail.example.jp", &not_pem, "holds no PEM certificate"),
            ("smtp://mail.example.jp", &missing, "cannot read the CA file"),
            ("smtp://127.0.0.1?tls=none", &not_pem, "holds no PEM certificate"),
        ] {
            let file = format!(
                "[[handoff.destinations]]\nkind = \"mail\"\nto = \"desk@pref.example.jp\"\n\
                 from = \"bot@pref.example.jp\"\nsmtp_url = \"{url}\"\nca_file = \"{}\"\n",
                file.display()
            );
            let err = format!("{:#}", load(&file, &[]).unwrap_err());
            assert!(err.contains("flowbot.toml:6:") && err.contains(want), "{err}");
        }
        let env = [
            ("FLOWBOT_HANDOFF_MAIL_TO", "a@pref.example.jp"),
            ("FLOWBOT_HANDOFF_MAIL_FROM", "bot@pref.example.jp"),
            ("FLOWBOT_SMTP_URL", "smtps://mail.example.jp"),
            ("FLOWBOT_SMTP_CA_FILE", missing.to_str().unwrap()),
        ];
        let err = format!("{:#}", load("", &env).unwrap_err());
        assert!(err.contains("environment variable FLOWBOT_SMTP_CA_FILE"), "{err}");
        let err = format!("{:#}", load("", &env[3..]).unwrap_err());
        assert!(err.contains("FLOWBOT_SMTP_CA_FILE is set, and FLOWBOT_HANDOFF_MAIL_TO"), "{err}");
    }

    #[test]
    fn mail_destinations_are_checked_and_keep_their_password_out_of_sight() {
        let file = "[[handoff.destinations]]\nkind = \"mail\"\nto = \"desk@pref.example.jp\"\n\
                    from = \"bot@pref.example.jp\"\nsmtp_url = \"smtps://mail.example.jp\"\n\
                    user = \"bot\"\npassword_env = \"DESK_SMTP_PW\"\n";
        let c = load(file, &[("DESK_SMTP_PW", "pw-0123456789")]).unwrap();
        let settings = c.handoff.destinations[0].mail().unwrap();
        assert_eq!(settings.to, ["desk@pref.example.jp"]);
        assert_eq!(settings.password.as_ref().map(|p| p.expose()), Some("pw-0123456789"));
        assert!(!format!("{c:?}").contains("pw-0123456789"));
        let err = format!("{:#}", load(file, &[]).unwrap_err());
        assert!(err.contains("flowbot.toml:1:") && err.contains("DESK_SMTP_PW"), "{err}");

        let bad = "[[handoff.destinations]]\nkind = \"mail\"\nto = [\"desk@pref.example.jp\", \"desk\"]\n\
                   from = \"bot@\"\nsmtp_url = \"smtp://example.org:25?tls=none\"\npassword_env = \"X\"\n";
        let err = format!("{:#}", load(bad, &[]).unwrap_err());
        for want in [
            "`desk` is not an e-mail address",
            "`bot@` is not an e-mail address",
            "only for a relay on this machine",
            "`password_env` is given without `user`",
        ] {
            assert!(err.contains(want), "missing {want:?} in {err}");
        }

        let env = [
            ("FLOWBOT_HANDOFF_MAIL_TO", "a@pref.example.jp, b@pref.example.jp"),
            ("FLOWBOT_HANDOFF_MAIL_FROM", "bot@pref.example.jp"),
            ("FLOWBOT_SMTP_URL", "smtp://127.0.0.1:2525?tls=none"),
            ("FLOWBOT_SMTP_USER", "bot"),
            ("FLOWBOT_SMTP_PASSWORD", "env-pw-0123456789"),
        ];
        let c = load(file, &env).unwrap();
        assert_eq!(c.handoff.destinations.len(), 1);
        let settings = c.handoff.destinations[0].mail().unwrap();
        assert_eq!(settings.to, ["a@pref.example.jp", "b@pref.example.jp"]);
        assert_eq!(settings.smtp_url, "smtp://127.0.0.1:2525?tls=none");
        assert_eq!(settings.password.as_ref().map(|p| p.expose()), Some("env-pw-0123456789"));
        let err = format!(
            "{:#}",
            load("", &[("FLOWBOT_SMTP_URL", "smtp://example.org?tls=none"), env[0]]).unwrap_err()
        );
        assert!(err.contains("environment variable FLOWBOT_HANDOFF_MAIL_TO"), "{err}");
        assert!(err.contains("FLOWBOT_HANDOFF_MAIL_FROM is not"), "{err}");
        let err = format!("{:#}", load("", &[env[2]]).unwrap_err());
        assert!(err.contains("environment variable FLOWBOT_SMTP_URL"), "{err}");
    }

    #[test]
    fn lineworks_destinations_load_their_key_and_secret_and_print_neither() {
        let key = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/lineworks-test-key.pem");
        let file = format!(
            "[[handoff.destinations]]\nkind = \"lineworks\"\nbot_id = 2000001\nchannel_id = \"ch-1\"\n\
             client_id = \"client-1\"\nclient_secret_env = \"DESK_LW_SECRET\"\n\
             service_account = \"svc@example\"\nprivate_key_file = \"{key}\"\n"
        );
        let c = load(&file, &[("DESK_LW_SECRET", "lw-secret-0123456789")]).unwrap();
        let d = &c.handoff.destinations[0];
        assert_eq!(d.sink(), "handoff:lineworks");
        let settings = d.lineworks().unwrap();
        assert_eq!(settings.bot_id, "2000001");
        assert_eq!(settings.target, flowbot_lineworks::Target::Channel("ch-1".into()));
        assert_eq!(settings.client_secret.expose(), "lw-secret-0123456789");
        assert_eq!(settings.api_url, "https://www.worksapis.com");
        assert_eq!(settings.auth_url, "https://auth.worksmobile.com");
        assert!(!format!("{c:?}").contains("lw-secret-0123456789"));
        let fake = [
            ("DESK_LW_SECRET", "lw-secret-0123456789"),
            ("LINEWORKS_API_URL", "http://127.0.0.1:9/"),
            ("LINEWORKS_AUTH_URL", "http://127.0.0.1:10"),
        ];
        let settings = load(&file, &fake).unwrap().handoff.destinations[0].lineworks().unwrap();
        assert_eq!((settings.api_url.as_str(), settings.auth_url.as_str()), (fake[1].1, fake[2].1));

        // No secret, a plain-text API off this machine, both targets, a file that is no key.
        let not_a_key = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let bad = file.replace(key, not_a_key).replace(
            "channel_id = \"ch-1\"\n",
            "channel_id = \"ch-1\"\nuser_id = \"desk@example\"\n",
        );
        let err = format!(
            "{:#}",
            load(&bad, &[("LINEWORKS_API_URL", "http://worksapis.example")]).unwrap_err()
        );
        for want in [
            "flowbot.toml:5: [[handoff.destinations]] `lineworks`: give `channel_id` or `user_id`, not both",
            "flowbot.toml:7: [[handoff.destinations]] `lineworks`: the environment variable DESK_LW_SECRET",
            "flowbot.toml:9: [[handoff.destinations]] `lineworks`: the private key file",
            "no PEM block",
            "environment variable LINEWORKS_API_URL: `http://worksapis.example`: plain http",
        ] {
            assert!(err.contains(want), "missing {want:?} in {err}");
        }
        let missing =
            file.replace(key, "/nonexistent/lineworks.key").replace("channel_id = \"ch-1\"\n", "");
        let err = format!("{:#}", load(&missing, &[("DESK_LW_SECRET", "x")]).unwrap_err());
        assert!(
            err.contains("cannot read the private key file /nonexistent/lineworks.key"),
            "{err}"
        );
        assert!(err.contains("needs `channel_id`"), "{err}");
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
    fn worker_threads_is_a_setting() {
        assert_eq!(load("", &[]).unwrap().worker_threads(), 1);
        let two = load("[runtime]\nworker_threads = 2\n", &[]).unwrap();
        assert_eq!(two.worker_threads(), 2);
        let env = load("[runtime]\nworker_threads = 2\n", &[("FLOWBOT_WORKER_THREADS", "4")]);
        assert_eq!(env.unwrap().worker_threads(), 4);
        let err = load("[runtime]\nworker_threads = 0\n", &[]).unwrap_err();
        assert!(format!("{err}").contains("flowbot.toml:2: [runtime] worker_threads = 0"), "{err}");
        let err = load("", &[("FLOWBOT_WORKER_THREADS", "many")]).unwrap_err();
        assert!(format!("{err}").contains("FLOWBOT_WORKER_THREADS is not a whole number"), "{err}");
        let err = load("", &[("FLOWBOT_WORKER_THREADS", "65")]).unwrap_err();
        assert!(format!("{err}").contains("FLOWBOT_WORKER_THREADS"), "{err}");
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
