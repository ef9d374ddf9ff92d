//! `flowbot link`: links and QR codes decode back to the right URL.

use flowbot_tests::{flowbot, stdout};

/// Runs `flowbot link ARGS` (with no web address from the test's environment).
fn link(args: &[&str]) -> std::process::Output {
    flowbot().arg("link").args(args).env_remove("FLOWBOT_WEB_URL").output().unwrap()
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

#[test]
fn web_links_and_their_qr_codes() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("desk.png");
    let out = link(&[
        "--platform",
        "web",
        "--web-url",
        "https://bot.example.jp",
        "--entry",
        "taiou3",
        "--qr",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out), "https://bot.example.jp/chat?start=taiou3\n");
    let image = image::open(&png).unwrap().to_luma8();
    assert_eq!(decode(image), "https://bot.example.jp/chat?start=taiou3");

    // From the environment, with a trailing slash; over http; without an entry.
    let out = flowbot()
        .args(["link", "--platform", "web", "--entry", "taiou3-view"])
        .env("FLOWBOT_WEB_URL", "https://bot.example.jp/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out), "https://bot.example.jp/chat?start=taiou3-view\n");
    let out = link(&["--platform", "web", "--web-url", "http://127.0.0.1:8080"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out), "http://127.0.0.1:8080/chat\n", "no entry: the plain page");
}

#[test]
fn web_links_are_refused_without_a_good_address_or_entry() {
    let out =
        link(&["--platform", "web", "--web-url", "https://bot.example.jp", "--entry", "m3_change"]);
    assert!(!out.status.success(), "a node id is not an entry");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no entry point `m3_change`"), "{err}");
    for entry in ["taiou3", "taiou3-view", "q1", "existing"] {
        assert!(err.contains(entry), "{entry} listed: {err}");
    }

    let out = link(&["--platform", "web", "--entry", "taiou3"]);
    assert!(!out.status.success(), "no address");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--web-url") && err.contains("FLOWBOT_WEB_URL"), "{err}");

    for bad in ["ftp://x", "bot.example.jp", "https://", "mailto:desk@example.jp"] {
        let out = link(&["--platform", "web", "--web-url", bad, "--entry", "taiou3"]);
        assert!(!out.status.success(), "{bad} refused");
        assert!(out.stdout.is_empty(), "{bad}: {}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad) && err.contains("http(s)"), "{bad}: {err}");
    }
    // The page is at /chat of its host: a prefix, a query or a fragment would make a dead link.
    for bad in
        ["https://x.example.jp/help/", "https://x.example.jp/?a=1", "https://x.example.jp/#top"]
    {
        let out = link(&["--platform", "web", "--web-url", bad, "--entry", "taiou3"]);
        assert!(!out.status.success(), "{bad} refused");
        assert!(out.stdout.is_empty(), "{bad}: {}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("without a path, query or fragment"), "{bad}: {err}");
    }
}
