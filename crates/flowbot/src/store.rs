//! Opening the conversation store and the service from the command line's settings.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
pub use flowbot_store::now;
use flowbot_store::{Service, ServiceOptions, SqlStore};

use crate::config::{Config, Destination};
use crate::flows::FlowSource;

/// Where conversations are kept, and for how long.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` (several replicas need PostgreSQL).
    /// Default: a SQLite file under the platform's state directory.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Idle conversations expire after this many days (and `flowbot purge` deletes them).
    #[arg(long, env = "FLOWBOT_EXPIRE_AFTER_DAYS", value_name = "DAYS", default_value_t = 30)]
    pub expire_after_days: u64,
    /// A user back after this many hours is asked whether to resume or start again.
    #[arg(long, env = "FLOWBOT_RESUME_AFTER_HOURS", value_name = "HOURS", default_value_t = 24)]
    pub resume_after_hours: u64,
}

const HOUR_MS: u64 = 60 * 60 * 1000;

impl StoreArgs {
    /// The database URL: the one given, or the default SQLite file.
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        let dir = dirs::state_dir()
            .or_else(dirs::data_local_dir)
            .map(|d| d.join("flowbot"))
            .or_else(|| Some(PathBuf::from(".flowbot")))
            .context("no state directory")?;
        Ok(format!("sqlite://{}", dir.join("flowbot.sqlite").display()))
    }

    pub async fn open(&self, config: &Config) -> anyhow::Result<SqlStore> {
        let url = self.url()?;
        SqlStore::open_with(&url, config.sqlite_synchronous())
            .await
            .context("cannot open the conversation store")
    }

    pub fn options(&self, config: &Config) -> ServiceOptions {
        ServiceOptions {
            params: config.params.clone(),
            param_origins: config.param_origins().clone(),
            resume_after: (self.resume_after_hours > 0)
                .then_some(self.resume_after_hours * HOUR_MS),
            expire_after: self.expire_after_days.max(1) * 24 * HOUR_MS,
            keep_personal_data_for: config.personal_data_ms(),
            destinations: config.handoff.destinations.iter().map(Destination::sink).collect(),
            lease: config.worker_options().lease,
            ..ServiceOptions::default()
        }
    }

    /// Opens the store and starts the service on `flow`.
    pub async fn service(
        &self,
        flow: &FlowSource,
        config: &Config,
    ) -> anyhow::Result<Arc<Service>> {
        self.service_for(flow, config, Vec::new()).await
    }

    /// [`StoreArgs::service`] for platforms with these limits: the flow (and every reload)
    /// must keep within them.
    pub async fn service_for(
        &self,
        flow: &FlowSource,
        config: &Config,
        limits: Vec<flowbot_core::Limits>,
    ) -> anyhow::Result<Arc<Service>> {
        let store = self.open(config).await?;
        let options = ServiceOptions { limits, ..self.options(config) };
        let service = Service::new(Arc::new(store), &flow.text, &flow.origin, options, now())
            .await
            .context("cannot start the conversation service")?;
        config.check_params([service.flow().as_ref()])?;
        Ok(Arc::new(service))
    }
}
