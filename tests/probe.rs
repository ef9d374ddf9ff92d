//! `flowbot probe URL`, the container's health check, as a process against a server on
//! 127.0.0.1: 2xx exits 0; 404, a redirect, a closed port and a silent server exit 1 with one line.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Output;
use std::time::{Duration, Instant};

use flowbot_tests::flowbot;

/// A server on 127.0.0.1: `/healthz` answers 200, `/moved` redirects to it, anything else 404.
async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/moved", axum::routing::get(|| async { axum::response::Redirect::to("/healthz") }));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    address
}

/// `flowbot probe ARGS`, run off the async threads. Every proxy variable points at a closed
/// port: a probe must ignore them.
async fn probe(args: &[&str]) -> (Output, Duration) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let closed = format!("http://{}", closed_port());
        let started = Instant::now();
        let out = flowbot()
            .arg("probe")
            .args(&args)
            .env("http_proxy", &closed)
            .env("HTTP_PROXY", &closed)
            .env("all_proxy", &closed)
            .env("ALL_PROXY", &closed)
            .env_remove("no_proxy")
            .env_remove("NO_PROXY")
            .output()
            .expect("run flowbot probe");
        (out, started.elapsed())
    })
    .await
    .expect("probe thread")
}

/// An address on 127.0.0.1 where nothing listens: bound, then released.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    listener.local_addr().expect("address")
}

/// The reason a failed probe gave: exactly one line on stderr, nothing on stdout.
fn failure(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8(out.stderr.clone()).expect("utf-8 stderr");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_exits_0_on_2xx_and_1_with_one_line_otherwise() {
    let address = server().await;

    let (ok, _) = probe(&[&format!("http://{address}/healthz")]).await;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(ok.stdout.is_empty() && ok.stderr.is_empty(), "{ok:?}");

    let (missing, _) = probe(&[&format!("http://{address}/nothing-here")]).await;
    let reason = failure(&missing);
    assert!(reason.contains("/nothing-here answered 404"), "{reason}");

    let (moved, _) = probe(&[&format!("http://{address}/moved")]).await;
    let reason = failure(&moved);
    assert!(reason.contains("answered 303"), "a redirect is not followed: {reason}");

    let closed = closed_port();
    let (refused, _) = probe(&[&format!("http://{closed}/healthz")]).await;
    let reason = failure(&refused);
    assert!(reason.starts_with(&format!("flowbot: http://{closed}/healthz: ")), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_gives_up_on_a_silent_server_after_its_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });

    let (silent, elapsed) =
        probe(&["--timeout", "0.5", &format!("http://{address}/healthz")]).await;
    let reason = failure(&silent);
    assert!(reason.contains("no answer within 500ms"), "{reason}");
    assert!(elapsed >= Duration::from_millis(500), "waited {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "waited {elapsed:?}");

    let (bad, _) = probe(&["--timeout", "0", &format!("http://{address}/healthz")]).await;
    assert_eq!(bad.status.code(), Some(2), "a zero timeout is a usage error: {bad:?}");
}
