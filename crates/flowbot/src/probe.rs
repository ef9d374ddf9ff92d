//! `flowbot probe URL`: a health check that needs no shell tools (the container image has none):
//! exits 0 when the URL answers 2xx, and 1 with a one-line reason otherwise.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// How long a probe waits by default, connecting and reading the answer's head together.
pub const DEFAULT_TIMEOUT: &str = "5";

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The address to ask, e.g. http://127.0.0.1:8080/healthz.
    #[arg(value_name = "URL")]
    url: url::Url,
    /// Give up after this many seconds (e.g. 2 or 0.5).
    #[arg(long, value_name = "SECONDS", default_value = DEFAULT_TIMEOUT, value_parser = seconds)]
    timeout: Duration,
}

/// One GET: success only for a 2xx answer. Redirects are not followed (a 3xx is a failure, as
/// the probed path is the health check itself), and no proxy from the environment is used: a
/// probe of 127.0.0.1 must reach this host.
pub fn run(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let url = shown(&args.url);
    anyhow::ensure!(
        matches!(args.url.scheme(), "http" | "https"),
        "{url}: only http and https addresses can be probed"
    );
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("flowbot-probe/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTP client")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let status = runtime.block_on(async {
        let response = client.get(args.url.clone()).send().await;
        response.map(|r| r.status()).map_err(|err| {
            let why = if err.is_timeout() {
                format!("no answer within {:?}", args.timeout)
            } else {
                format!("{:#}", anyhow::Error::from(err.without_url()))
            };
            anyhow::anyhow!("{url}: {why}")
        })
    })?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(ExitCode::SUCCESS)
}

/// The URL for a message: without a password it might carry.
fn shown(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(None);
    }
    url.to_string()
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("`{text}` is not a positive number of seconds"))
}
