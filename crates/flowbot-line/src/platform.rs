//! LINE as the binary lists it: its settings (flags and environment variables), the
//! [`Platform`] contract, and the links a help desk hands out.

use std::sync::Arc;

use async_trait::async_trait;
use flowbot_adapter::{
    About, Deliver, Link, Platform, PlatformError, RetryPolicy, Running, Secret,
};
use flowbot_core::Flow;
use flowbot_store::Service;

use crate::{Api, DEFAULT_API_URL, Line, SINK, is_chat_id};

/// What LINE is to the binary.
pub const ABOUT: About = About {
    name: SINK,
    limits: &crate::render::LIMITS,
    enable_hint: "LINE_CHANNEL_ACCESS_TOKEN and LINE_CHANNEL_SECRET to run on LINE",
};

/// LINE's settings.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct Options {
    /// LINE: the channel access token (long-lived) from the LINE Developers console. Prefer the
    /// environment variable to the flag.
    #[arg(long, env = "LINE_CHANNEL_ACCESS_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub line_channel_access_token: Option<Secret>,
    /// LINE: the channel secret, which signs the webhook's requests.
    #[arg(long, env = "LINE_CHANNEL_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub line_channel_secret: Option<Secret>,
    /// LINE: the Messaging API (default https://api.line.me).
    #[arg(long, env = "LINE_API_URL", value_name = "URL")]
    pub line_api_url: Option<url::Url>,
    /// LINE links: the account's basic id, `@xxxx` (`flowbot link --platform line`).
    #[arg(long = "line-id", env = "LINE_ID", value_name = "ID")]
    pub line_id: Option<String>,
}

impl Options {
    fn line_id(&self) -> Result<String, PlatformError> {
        let id = self.line_id.as_deref().map(str::trim).unwrap_or_default();
        if id.is_empty() {
            return Err(PlatformError::new(
                "a LINE link needs the account's LINE ID: --line-id @xxxx or LINE_ID",
            ));
        }
        let bare = id.strip_prefix('@').unwrap_or(id);
        let valid = !bare.is_empty()
            && bare.len() <= 40
            && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(PlatformError::new(format!(
                "`{id}` is not a LINE ID (@ and letters, digits, . _ -)"
            )));
        }
        Ok(format!("@{bare}"))
    }
}

#[async_trait]
impl Platform for Options {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn enabled(&self) -> bool {
        let set = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.is_empty());
        set(&self.line_channel_access_token) && set(&self.line_channel_secret)
    }

    async fn start(&self, service: Arc<Service>) -> Result<Arc<dyn Running>, PlatformError> {
        let token = self.line_channel_access_token.clone().unwrap_or_default();
        let secret = self.line_channel_secret.clone().unwrap_or_default();
        let base = match &self.line_api_url {
            Some(url) => url.clone(),
            None => url::Url::parse(DEFAULT_API_URL).unwrap_or_else(|_| unreachable!()),
        };
        let api = Api::new(token, base)
            .map_err(PlatformError::new)?
            .with_metrics(service.metrics().clone());
        let info = RetryPolicy::CALL.run("info", || api.bot_info()).await.map_err(|e| {
            PlatformError::new(format!(
                "cannot start the LINE bot (is LINE_CHANNEL_ACCESS_TOKEN right?): {e}"
            ))
        })?;
        tracing::info!(bot = %info.basic_id, "line: connected; webhook at {}", crate::WEBHOOK_PATH);
        Ok(Arc::new(Started { line: Line::new(api, secret, service) }))
    }

    fn link(&self, entry: Option<&str>) -> Result<Link, PlatformError> {
        let id = self.line_id()?;
        match entry {
            None => Ok(Link { url: format!("https://line.me/R/ti/p/{id}"), note: None }),
            Some(entry) => Ok(start_link(&id, "", entry)),
        }
    }

    fn link_in(&self, flow: &Flow, entry: Option<&str>) -> Result<Link, PlatformError> {
        let id = self.line_id()?;
        match entry {
            None => self.link(None),
            Some(entry) => Ok(start_link(&id, &flow.texts().start_phrase, entry)),
        }
    }
}

/// The `oaMessage` link that opens the account's chat with the start phrase typed in.
fn start_link(id: &str, phrase: &str, entry: &str) -> Link {
    let text = if phrase.trim().is_empty() {
        format!("#{entry}")
    } else {
        format!("{} #{entry}", phrase.trim())
    };
    let url = format!("https://line.me/R/oaMessage/{}/?{}", percent(id), percent(&text));
    Link { url, note: Some(text) }
}

/// Percent-encoding of everything but unreserved characters (RFC 3986).
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A started LINE bot: the webhook route, replies, push destinations.
#[derive(Debug)]
struct Started {
    line: Line,
}

#[async_trait]
impl Running for Started {
    fn routes(&self) -> Option<axum::Router> {
        Some(self.line.webhook_router())
    }

    fn replies(&self) -> Option<Arc<dyn Deliver>> {
        Some(Arc::new(self.line.replies()))
    }

    fn handoff(&self, to: &str) -> Option<Arc<dyn Deliver>> {
        Some(if is_chat_id(to) {
            Arc::new(self.line.push(to))
        } else {
            Arc::new(flowbot_adapter::Refuse("not a LINE user, group or room id"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(id: &str) -> Options {
        Options { line_id: Some(id.to_owned()), ..Options::default() }
    }

    #[test]
    fn links_open_the_chat_with_the_phrase_typed_or_add_the_account() {
        let link = options("@abc1234d").link(None).unwrap();
        assert_eq!(link.url, "https://line.me/R/ti/p/@abc1234d");
        let link = start_link("@abc1234d", "G-MIS案内", "taiou3");
        assert_eq!(
            link.url,
            "https://line.me/R/oaMessage/%40abc1234d/?G-MIS%E6%A1%88%E5%86%85%20%23taiou3"
        );
        assert_eq!(link.note.as_deref(), Some("G-MIS案内 #taiou3"));
        assert_eq!(options("abc1234d").line_id().unwrap(), "@abc1234d");
        assert!(options("@a b").line_id().is_err());
        assert!(Options::default().line_id().is_err());
    }
}
