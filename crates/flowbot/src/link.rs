//! `flowbot link`: the link (and QR code) a help desk hands out to open the bot, at the start or
//! at a named entry point.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flowbot_core::Flow;
use qrcode::QrCode;

use crate::platforms::Platforms;
use qrcode::render::{svg, unicode};

/// What `flowbot link` was asked for.
#[derive(Debug)]
pub struct Request<'a> {
    /// The platform's name (`--platform`).
    pub platform: &'a str,
    pub entry: Option<&'a str>,
    /// Where to write the QR code: `*.png`, `*.svg`, or `-` to draw it in the terminal.
    pub qr: Option<&'a Path>,
}

pub fn run(flow: &Flow, platforms: &Platforms, request: &Request<'_>) -> anyhow::Result<ExitCode> {
    let Some(platform) = platforms.find(request.platform) else {
        anyhow::bail!(
            "no platform `{}`; known: {}",
            request.platform,
            platforms.names().join(", ")
        );
    };
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
    let link = platform.link_in(flow, request.entry)?;
    println!("{}", link.url);
    if let Some(note) = link.note {
        println!("{note}");
    }
    if let Some(path) = request.qr {
        write_qr(&link.url, path)?;
    }
    Ok(ExitCode::SUCCESS)
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
