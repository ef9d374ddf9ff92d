//! The soak's command line: `--name value` pairs, each with a default.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: chaos-soak [--backend sqlite|postgres] [--users N] [--seconds S] [--conversations N]
                  [--kill-every-ms LO..HI] [--seed N] [--fail-share X | --fail-429 X --fail-5xx X]
                  [--duplicate-share X] [--double-press-share X] [--typed-share X]
                  [--think-ms LO..HI] [--settle-seconds S] [--lease-seconds S]
                  [--resend-window-ms MS] [--flow FILE] [--flowbot PATH] [--keep]
PostgreSQL: DATABASE_URL names a server whose role may CREATE DATABASE; each run makes its own.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Everything a soak run is told.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    /// Simulated users at once; each walks one conversation after another.
    pub users: usize,
    /// How long the chaos lasts (kills, faults, duplicates); new conversations start only then.
    pub chaos: Duration,
    /// At most this many conversations in all (`None`: as many as the chaos phase allows).
    pub conversations: Option<u64>,
    /// The pause before each SIGKILL, drawn in this range (ms).
    pub kill_every_ms: (u64, u64),
    pub seed: u64,
    /// Shares of every Bot API call answered with 429 (`retry_after` 1 s) and with 500.
    pub fail_429: f64,
    pub fail_5xx: f64,
    /// Share of updates delivered twice by the fake.
    pub duplicate_share: f64,
    /// Share of presses a user makes twice (two callback queries, the same button).
    pub double_press_share: f64,
    /// Share of answers typed (the button's label as a message) instead of pressed.
    pub typed_share: f64,
    /// A user's pause before each answer (ms).
    pub think_ms: (u64, u64),
    /// The longest the calm phase may take to settle.
    pub settle: Duration,
    /// `[handoff] lease_seconds` of the bot: how soon a killed process's replies are taken over.
    pub lease_seconds: u64,
    /// A copy sent again counts as the documented at-least-once resend (not as doubled) only
    /// when its first copy went out at most this long before a SIGKILL.
    pub resend_window: Duration,
    /// The flow the bot runs and the paths are drawn from (default: the G-MIS flow of this
    /// checkout, which the binary embeds).
    pub flow: Option<PathBuf>,
    pub flowbot: Option<PathBuf>,
    /// Keep the work folder (database, bot logs) even when the soak passes.
    pub keep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: Backend::Sqlite,
            users: 20,
            chaos: Duration::from_secs(30),
            conversations: None,
            kill_every_ms: (500, 3000),
            seed: 0,
            fail_429: 0.10,
            fail_5xx: 0.10,
            duplicate_share: 0.10,
            double_press_share: 0.10,
            typed_share: 0.15,
            think_ms: (0, 300),
            settle: Duration::from_secs(60),
            lease_seconds: 2,
            resend_window: Duration::from_secs(2),
            flow: None,
            flowbot: None,
            keep: false,
        }
    }
}

impl Options {
    /// Parses `args` (without the program name). The seed defaults to the clock's nanoseconds.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Options {
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            ..Options::default()
        };
        let mut it = args.iter();
        while let Some(name) = it.next() {
            if name == "--keep" {
                o.keep = true;
                continue;
            }
            if name == "--help" || name == "-h" {
                return Err(String::new());
            }
            let value = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            let bad = || format!("{name} {value}: not understood");
            let num = |v: &str| v.parse::<u64>().map_err(|_| bad());
            let share = |v: &str| match v.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
                _ => Err(bad()),
            };
            let range = |v: &str| -> Result<(u64, u64), String> {
                let (lo, hi) = v.split_once("..").ok_or_else(bad)?;
                let (lo, hi) = (num(lo)?, num(hi)?);
                if lo > hi {
                    return Err(bad());
                }
                Ok((lo, hi))
            };
            match name.as_str() {
                "--backend" => {
                    o.backend = match value.as_str() {
                        "sqlite" => Backend::Sqlite,
                        "postgres" | "postgresql" => Backend::Postgres,
                        _ => return Err(bad()),
                    }
                }
                "--users" => o.users = num(value)?.max(1) as usize,
                "--seconds" => o.chaos = Duration::from_secs(num(value)?),
                "--conversations" => o.conversations = Some(num(value)?),
                "--kill-every-ms" => o.kill_every_ms = range(value)?,
                "--seed" => o.seed = num(value)?,
                "--fail-share" => {
                    let x = share(value)?;
                    (o.fail_429, o.fail_5xx) = (x / 2.0, x / 2.0);
                }
                "--fail-429" => o.fail_429 = share(value)?,
                "--fail-5xx" => o.fail_5xx = share(value)?,
                "--duplicate-share" => o.duplicate_share = share(value)?,
                "--double-press-share" => o.double_press_share = share(value)?,
                "--typed-share" => o.typed_share = share(value)?,
                "--think-ms" => o.think_ms = range(value)?,
                "--settle-seconds" => o.settle = Duration::from_secs(num(value)?),
                "--lease-seconds" => o.lease_seconds = num(value)?.max(1),
                "--resend-window-ms" => o.resend_window = Duration::from_millis(num(value)?),
                "--flow" => o.flow = Some(PathBuf::from(value)),
                "--flowbot" => o.flowbot = Some(PathBuf::from(value)),
                _ => return Err(format!("unknown argument {name}")),
            }
        }
        if o.fail_429 + o.fail_5xx >= 1.0 {
            return Err("--fail-429 and --fail-5xx must leave some calls answered".into());
        }
        if o.kill_every_ms.0 == 0 {
            return Err("--kill-every-ms: the pause must be at least 1 ms".into());
        }
        Ok(o)
    }
}
