//! The `flowbot` binary: command-line entry point, wiring the core to files and terminals.

mod admin;
mod chat;
mod check;
mod config;
mod diagram;
mod flows;
#[cfg(test)]
mod fuzz;
mod handoff;
mod health;
mod link;
mod logging;
mod metrics;
mod notice;
mod pipe;
mod platforms;
mod probe;
mod render;
mod requests;
mod run;
mod scripts;
mod store;
mod svg;
mod traffic;

/// mimalloc instead of the C library's allocator: a step allocates and frees many small
/// buffers (JSON, HTTP heads, stored rows) across threads, where glibc's malloc showed as a
/// tenth of the bot's CPU under load (BENCHMARKS.md, the Telegram throughput issue).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// A chat bot that walks people through a troubleshooting decision tree, one button per answer.
///
/// With no files at all it runs its embedded default flow (G-MIS account mails that do not
/// arrive).
#[derive(Debug, Parser)]
#[command(name = "flowbot", version, about, long_about = None)]
struct Cli {
    /// Deployment settings (TOML): parameter values for the flows, e.g. a prefecture's notes.
    #[arg(long, global = true, env = "FLOWBOT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bot on the configured messengers (TELEGRAM_BOT_TOKEN for Telegram; DISCORD_TOKEN,
    /// and for the HTTP mode DISCORD_APPLICATION_ID and DISCORD_PUBLIC_KEY, for Discord).
    Run(Box<run::RunArgs>),
    /// Validate flow files; list every problem with file, line and node, and exit non-zero.
    Check {
        /// Flow files, or folders whose *.yaml files are flows.
        #[arg(value_name = "PATH", default_value = flows::FLOWS_DIR)]
        paths: Vec<PathBuf>,
    },
    /// Talk to a flow in the terminal. Reads one answer per line when input is not a terminal.
    Chat {
        /// The flow file to run (default: the embedded G-MIS flow).
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
        /// Start at this named entry point instead of the beginning.
        #[arg(long, value_name = "NAME")]
        entry: Option<String>,
        /// Keep the conversation in the store under this user id: a later `chat --user` with
        /// the same id continues it. Without it the conversation lives only in memory.
        #[arg(long, value_name = "ID")]
        user: Option<String>,
        #[command(flatten)]
        store: store::StoreArgs,
    },
    /// Run the bot over standard input and output, one JSON object per line (see `pipe.rs`).
    Pipe {
        /// The flow file to run (default: the embedded G-MIS flow); SIGHUP reloads it.
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
        #[command(flatten)]
        store: store::StoreArgs,
    },
    /// Delete expired conversations (and the personal data they hold), old event ids and flow
    /// versions no conversation uses.
    Purge {
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
        #[command(flatten)]
        store: store::StoreArgs,
    },
    /// Per flow version: conversations, endings reached, answers chosen, and where
    /// conversations stopped; or the flowchart with those counts on it.
    Stats {
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
        /// text: the table; json: every version's nodes and edges with counts; mermaid, svg:
        /// the flowchart of one version with its counts and drop-off (svg: a standalone
        /// picture, Japanese fonts named).
        #[arg(long, value_enum, default_value = "text")]
        format: admin::StatsFormat,
        /// Count only events on or after this day (YYYY-MM-DD, from 00:00 Japan time, +09:00).
        #[arg(long, value_name = "DATE", value_parser = admin::parse_day)]
        since: Option<admin::Day>,
        /// Count only events on or before this day (YYYY-MM-DD, through 24:00 Japan time).
        #[arg(long, value_name = "DATE", value_parser = admin::parse_day)]
        until: Option<admin::Day>,
        /// The flow version the mermaid and svg pictures draw, with that version's own
        /// flowchart (default: the current one).
        #[arg(long, value_name = "HEX")]
        version: Option<String>,
        #[command(flatten)]
        store: store::StoreArgs,
    },
    /// The help desk's inbox: list, show, export, resend and complete hand-off requests.
    Requests {
        #[command(subcommand)]
        command: requests::RequestsCommand,
    },
    /// Print the link (and optionally write a QR code) that opens the bot, at the start or at a
    /// named entry point.
    Link {
        /// The platform: telegram, discord, web or line.
        #[arg(long, value_name = "NAME")]
        platform: String,
        /// The entry point to open (one of the flow's `entries:`).
        #[arg(long, value_name = "NAME")]
        entry: Option<String>,
        /// Also write the link as a QR code: FILE.png, FILE.svg, or - to draw it here.
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
        /// The flow whose entry points count (default: the embedded G-MIS flow).
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
        /// The platforms' settings (`--bot-username`, `--discord-application-id`,
        /// `--web-url`, …).
        #[command(flatten)]
        platforms: Box<platforms::Platforms>,
    },
    /// Print a flow as a diagram whose boxes carry its exact texts.
    Render {
        /// The flow file to draw (default: the embedded G-MIS flow).
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
        #[arg(long, value_enum)]
        format: DiagramFormat,
        /// Put the whole text of messages and endings in their boxes, not only their titles.
        #[arg(long)]
        full: bool,
        /// Also draw the named entry points (`?start=NAME` links) and where they lead.
        #[arg(long)]
        entries: bool,
    },
    /// Run conversation scripts and check that they cover every edge of every flow.
    Test {
        /// Script files or folders (default: flows/tests).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Where the flows the scripts name are, and whose every edge must be covered.
        #[arg(long, value_name = "DIR", default_value = flows::FLOWS_DIR)]
        flows: PathBuf,
    },
    /// Exit 0 if URL answers 2xx, else 1 with the reason: a health check without shell tools.
    Probe(probe::ProbeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiagramFormat {
    Mermaid,
    Dot,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("flowbot: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Run(args) => {
            logging::init(logging::Format::from_env()?);
            runtime(&config)?.block_on(run::run(*args, &config))
        }
        Command::Check { paths } => check::run(&paths, &config),
        Command::Chat { flow, entry, user: None, store: _ } => {
            let flow = flows::load_or_default(flow.as_deref(), &config)?;
            chat::run(&flow, entry.as_deref())
        }
        Command::Chat { flow, entry, user: Some(user), store } => {
            let source = flows::FlowSource::read(flow.as_deref())?;
            let rt = runtime(&config)?;
            let service = rt.block_on(store.service(&source, &config))?;
            chat::run_stored(&service, &user, entry.as_deref(), &rt, &config)
        }
        Command::Pipe { flow, store } => {
            let source = flows::FlowSource::read(flow.as_deref())?;
            runtime(&config)?.block_on(async {
                let service = store.service(&source, &config).await?;
                // Requests submitted here are delivered from here when every destination can be
                // (webhooks); otherwise `flowbot run` delivers them.
                let stop = tokio_util::sync::CancellationToken::new();
                match handoff::start_handoff(&service, &config, stop.clone()) {
                    Ok(_) => {}
                    Err(err) => eprintln!("flowbot: requests are kept for `flowbot run`: {err:#}"),
                }
                let code = pipe::run(service, flow.as_deref()).await;
                stop.cancel();
                code
            })
        }
        Command::Purge { flow, store } => {
            let source = flows::FlowSource::read(flow.as_deref())?;
            runtime(&config)?
                .block_on(async { admin::purge(&*store.service(&source, &config).await?).await })
        }
        Command::Stats { flow, format, since, until, version, store } => {
            let source = flows::FlowSource::read(flow.as_deref())?;
            let query = admin::StatsQuery { format, since, until, version };
            runtime(&config)?.block_on(async {
                admin::stats(&*store.service(&source, &config).await?, &query).await
            })
        }
        Command::Requests { command } => {
            runtime(&config)?.block_on(requests::run(command, &config))
        }
        Command::Render { flow, format, full, entries } => {
            let flow = flows::load_or_default(flow.as_deref(), &config)?;
            let options = render::Options { full, entries };
            let text = match format {
                DiagramFormat::Mermaid => render::mermaid(&flow, options),
                DiagramFormat::Dot => render::dot(&flow, options),
            };
            chat::print_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { files, flows } => scripts::run(&files, &flows, &config),
        Command::Probe(args) => probe::run(&args),
        Command::Link { platform, entry, qr, flow, platforms } => {
            let flow = flows::load_or_default(flow.as_deref(), &config)?;
            let request =
                link::Request { platform: &platform, entry: entry.as_deref(), qr: qr.as_deref() };
            link::run(&flow, &platforms, &request)
        }
    }
}

fn runtime(config: &config::Config) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = config.worker_threads();
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?)
}

/// Resolves when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
