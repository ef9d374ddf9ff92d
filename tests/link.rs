//! `flowbot link`: links and QR codes decode back to the right URL.

use flowbot_tests::{flowbot, stdout};

/// Runs `flowbot link ARGS`.
fn link(args: &[&str]) -> std::process::Output {
    flowbot().arg("link").args(args).output().unwrap()
}

fn decode(image: image::GrayImage) -> String {
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().expect("a readable QR code").1
}

#[test]
fn telegram_links_and_their_qr_codes() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("desk.png");
    let png_path = png.to_str().unwrap();
    let out = link(&[
        "--platform",
        "telegram",
        "--bot-username",
        "@gmis_help_bot",
        "--entry",
        "taiou3",
        "--qr",
        png_path,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out).trim(), "https://t.me/gmis_help_bot?start=taiou3");
    let image = image::open(&png).unwrap().to_luma8();
    assert_eq!(decode(image), "https://t.me/gmis_help_bot?start=taiou3");

    let svg = dir.path().join("desk.svg");
    let out = link(&[
        "--platform",
        "telegram",
        "--bot-username",
        "gmis_help_bot",
        "--qr",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(stdout(&out).trim(), "https://t.me/gmis_help_bot", "no entry: the plain bot link");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("</svg>"), "{text}");
}

#[test]
fn the_terminal_drawing_is_a_readable_qr_code() {
    let out = link(&[
        "--platform",
        "telegram",
        "--bot-username",
        "gmis_help_bot",
        "--entry",
        "q5",
        "--qr",
        "-",
    ]);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("https://t.me/gmis_help_bot?start=q5"));
    // Each character is two modules, one above the other; dark is drawn.
    let rows: Vec<Vec<char>> =
        lines.filter(|l| !l.is_empty()).map(|l| l.chars().collect()).collect();
    let width = rows.iter().map(Vec::len).max().unwrap();
    let scale = 6;
    let mut image = image::GrayImage::from_pixel(
        (width * scale) as u32,
        (rows.len() * 2 * scale) as u32,
        image::Luma([255]),
    );
    for (y, row) in rows.iter().enumerate() {
        for (x, c) in row.iter().enumerate() {
            let (top, bottom) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            };
            for (half, dark) in [(0, top), (1, bottom)] {
                if !dark {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        image.put_pixel(
                            (x * scale + dx) as u32,
                            ((y * 2 + half) * scale + dy) as u32,
                            image::Luma([0]),
                        );
                    }
                }
            }
        }
    }
    assert_eq!(decode(image), "https://t.me/gmis_help_bot?start=q5");
}

#[test]
fn discord_links_unknown_entries_and_bad_names() {
    let out = link(&[
        "--platform",
        "discord",
        "--discord-application-id",
        "1200000000000000001",
        "--entry",
        "taiou5",
    ]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with("https://discord.com/oauth2/authorize?client_id=1200000000000000001&scope=bot+applications.commands\n"), "{text}");
    assert!(text.contains("/gmis start:taiou5"), "{text}");

    let out = link(&[
        "--platform",
        "telegram",
        "--bot-username",
        "gmis_help_bot",
        "--entry",
        "m3_change",
    ]);
    assert!(!out.status.success(), "a node id is not an entry");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no entry point `m3_change`") && err.contains("taiou3-view"), "{err}");

    let out = link(&["--platform", "telegram", "--bot-username", "not a bot"]);
    assert!(!out.status.success());
    let out =
        link(&["--platform", "telegram", "--bot-username", "gmis_help_bot", "--qr", "/tmp/x.gif"]);
    assert!(!out.status.success(), "only png, svg or -");
}
