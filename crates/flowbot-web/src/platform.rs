//! The web chat as the binary lists it: its settings (flags and environment variables) and the
//! [`Platform`] contract.

use std::sync::Arc;

use async_trait::async_trait;
use flowbot_adapter::{About, Link, Platform, PlatformError, Running};
use flowbot_store::Service;

use crate::{CHAT_PATH, Web};

/// What the web chat is to the binary.
pub const ABOUT: About = About {
    name: "web",
    limits: &crate::LIMITS,
    enable_hint: "FLOWBOT_WEB=true (--web) for the web chat",
};

/// The web chat's settings.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct Options {
    /// The web chat: serve the flow as a page at `/chat` on the listener.
    #[arg(long, env = "FLOWBOT_WEB")]
    pub web: bool,
    /// The web chat's public address (e.g. https://bot.pref.example.jp), when it is served
    /// behind a proxy: an https address marks the session cookie Secure. `flowbot link` needs
    /// it.
    #[arg(long, env = "FLOWBOT_WEB_URL", value_name = "URL")]
    pub web_url: Option<String>,
    /// The `[web]` settings of the settings file, set by the binary after loading it.
    #[arg(skip)]
    pub settings: crate::Settings,
}

#[async_trait]
impl Platform for Options {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn enabled(&self) -> bool {
        self.web || self.web_url.is_some()
    }

    async fn start(&self, service: Arc<Service>) -> Result<Arc<dyn Running>, PlatformError> {
        let secure = match self.web_url.as_deref() {
            Some(base) => {
                let url = url::Url::parse(base).map_err(|_| {
                    PlatformError::new(format!("FLOWBOT_WEB_URL `{base}` is not an address"))
                })?;
                url.scheme() == "https"
            }
            None => false,
        };
        let web = Web::start(service, &self.settings, secure)
            .await
            .map_err(|e| PlatformError::new(e.to_string()))?;
        tracing::info!(path = CHAT_PATH, "web: chat page served");
        Ok(Arc::new(Started { web }))
    }

    fn link(&self, entry: Option<&str>) -> Result<Link, PlatformError> {
        let base = self.web_url.as_deref().ok_or_else(|| {
            PlatformError::new(
                "a web link needs the chat's public address: --web-url or FLOWBOT_WEB_URL",
            )
        })?;
        let url = public_address(base)?;
        Ok(Link { url: crate::link(url.as_str(), entry), note: None })
    }
}

/// The chat's public address: http(s), with a host, and no path, query or fragment (the page
/// lives at `/chat` of its host).
fn public_address(base: &str) -> Result<url::Url, PlatformError> {
    let url = url::Url::parse(base)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| PlatformError::new(format!("`{base}` is not an http(s) address")))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(PlatformError::new(format!(
            "give the web chat's address without a path, query or fragment (the page is at \
             /chat of that host): `{base}`"
        )));
    }
    Ok(url)
}

/// The served chat page.
#[derive(Debug)]
struct Started {
    web: Web,
}

impl Running for Started {
    fn routes(&self) -> Option<axum::Router> {
        Some(self.web.router())
    }
}
