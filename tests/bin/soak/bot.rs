//! The bot under test: the real `flowbot run` process, SIGKILLed and started again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// A `flowbot run` against the fake, on one database, with its log appended to a file.
#[derive(Debug)]
pub struct Bot {
    command: PathBuf,
    database_url: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// When each SIGKILL was sent.
    pub kills: Vec<Instant>,
    pub starts: u32,
    /// Exits nobody asked for, with their status.
    pub exits: Vec<String>,
}

impl Bot {
    /// Starts `flowbot run ARGS`. `env` is its whole messenger setting (token, API URL,
    /// settings file).
    pub fn start(
        flowbot: &Path,
        database_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Bot {
        let mut bot = Bot {
            command: flowbot.to_owned(),
            database_url: database_url.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            log: log.to_owned(),
            child: None,
            kills: Vec::new(),
            starts: 0,
            exits: Vec::new(),
        };
        bot.spawn();
        bot
    }

    fn spawn(&mut self) {
        let log = File::options().create(true).append(true).open(&self.log).expect("bot log");
        let mut cmd = Command::new(&self.command);
        cmd.args(["run", "--listen", "127.0.0.1:0", "--database-url", &self.database_url])
            .args(&self.args)
            .env("RUST_LOG", std::env::var("FLOWBOT_SOAK_LOG").unwrap_or_else(|_| "warn".into()));
        for var in [
            "DATABASE_URL",
            "FLOWBOT_CONFIG",
            "FLOWBOT_LISTEN",
            "FLOWBOT_WEB",
            "TELEGRAM_BOT_TOKEN",
            "TELEGRAM_API_URL",
            "TELEGRAM_WEBHOOK_URL",
            "DISCORD_TOKEN",
            "DISCORD_PUBLIC_KEY",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("start flowbot run"));
        self.starts += 1;
    }

    /// SIGKILL, then a new process.
    pub fn kill_and_restart(&mut self) {
        self.check();
        if let Some(mut child) = self.child.take() {
            self.kills.push(Instant::now());
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn();
    }

    /// Notes an exit nobody asked for, and starts the bot again.
    pub fn check(&mut self) {
        let Some(child) = self.child.as_mut() else { return };
        if let Ok(Some(status)) = child.try_wait() {
            self.exits.push(status.to_string());
            self.child = None;
            self.spawn();
        }
    }

    /// SIGTERM (a clean stop: the bot confirms its updates and releases its leases), waiting
    /// at most `limit`; SIGKILL after that.
    pub fn stop(&mut self, limit: std::time::Duration) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
