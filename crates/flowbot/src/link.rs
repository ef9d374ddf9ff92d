//! `flowbot link`: the link (and QR code) a help desk hands out to open the bot, at the start or
//! at a named entry point.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use flowbot_core::Flow;
use qrcode::QrCode;
use qrcode::render::{svg, unicode};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Platform {
    Telegram,
    Discord,
    Web,
}

/// What `flowbot link` was asked for.
#[derive(Debug)]
pub struct Request<'a> {
    pub platform: Platform,
    pub entry: Option<&'a str>,
    pub bot_username: Option<&'a str>,
    pub discord_application_id: Option<u64>,
    pub discord_command: &'a str,
    /// The web chat's public address.
    pub web_url: Option<&'a str>,
    /// Where to write the QR code: `*.png`, `*.svg`, or `-` to draw it in the terminal.
    pub qr: Option<&'a Path>,
}

pub fn run(flow: &Flow, request: &Request<'_>) -> anyhow::Result<ExitCode> {
    if let Some(entry) = request.entry
        && flow.entry(entry).is_none()
    {
        let known: Vec<&str> = flow.entries().map(|(name, _)| name).collect();
        anyhow::bail!(
            "flow `{}` has no entry point `{entry}`; known: {}",
            flow.id(),
            known.join(", ")
        );
    }
    let (link, note) = match request.platform {
        Platform::Telegram => (telegram(request)?, None),
        Platform::Discord => {
            let id = request
                .discord_application_id
                .context("a Discord link needs the application id: --discord-application-id or DISCORD_APPLICATION_ID")?;
            let install = format!(
                "https://discord.com/oauth2/authorize?client_id={id}&scope=bot+applications.commands"
            );
            let command = match request.entry {
                Some(entry) => format!("/{} start:{entry}", request.discord_command),
                None => format!("/{}", request.discord_command),
            };
            (install, Some(format!("then type in Discord: {command}")))
        }
        Platform::Web => {
            let base = request.web_url.context(
                "a web link needs the chat's public address: --web-url or FLOWBOT_WEB_URL",
            )?;
            let url = url::Url::parse(base)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .with_context(|| format!("`{base}` is not an http(s) address"))?;
            // The page lives at `/chat` of its host: a path, query or fragment would break it.
            if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                anyhow::bail!(
                    "give the web chat's address without a path, query or fragment (the page is \
                     at /chat of that host): `{base}`"
                );
            }
            (flowbot_web::link(url.as_str(), request.entry), None)
        }
    };
    println!("{link}");
    if let Some(note) = note {
        println!("{note}");
    }
    if let Some(path) = request.qr {
        write_qr(&link, path)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `https://t.me/<bot>?start=<entry>`, or the plain bot link without an entry.
fn telegram(request: &Request<'_>) -> anyhow::Result<String> {
    let name = request
        .bot_username
        .context(
            "a Telegram link needs the bot's username: --bot-username or TELEGRAM_BOT_USERNAME",
        )?
        .trim_start_matches('@');
    let valid = (5..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.to_ascii_lowercase().ends_with("bot");
    if !valid {
        anyhow::bail!(
            "`{name}` is not a Telegram bot username (5 to 32 of A-Z a-z 0-9 _, ending in \"bot\")"
        );
    }
    Ok(match request.entry {
        Some(entry) => format!("https://t.me/{name}?start={entry}"),
        None => format!("https://t.me/{name}"),
    })
}

/// Writes the QR code of `link`: PNG or SVG by the file's extension, or `-` for the terminal.
fn write_qr(link: &str, path: &Path) -> anyhow::Result<()> {
    let code = QrCode::new(link.as_bytes()).context("the link does not fit a QR code")?;
    if path == Path::new("-") {
        let drawing = code.render::<unicode::Dense1x2>().quiet_zone(true).build();
        println!("{drawing}");
        return Ok(());
    }
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("png") => {
            let image =
                code.render::<image::Luma<u8>>().min_dimensions(400, 400).quiet_zone(true).build();
            image.save(path).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Some("svg") => {
            let drawing =
                code.render::<svg::Color<'_>>().min_dimensions(400, 400).quiet_zone(true).build();
            std::fs::write(path, drawing)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        _ => anyhow::bail!("write the QR code to a .png or .svg file, or to - for the terminal"),
    }
    eprintln!("QR code written to {}", path.display());
    Ok(())
}
