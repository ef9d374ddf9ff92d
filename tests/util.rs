//! Test harness shared by the integration tests: the `flowbot` executable, repository paths.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use flowbot_core::{Flow, Params, load_flow};

pub mod fake_telegram;

/// The repository root (the workspace).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// The `flowbot` executable that `cargo test` built beside this test binary.
pub fn flowbot_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = dir.join(format!("flowbot{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A `flowbot` command run in the repository root.
pub fn flowbot() -> Command {
    let mut cmd = Command::new(flowbot_path());
    cmd.current_dir(root()).env_remove("FLOWBOT_CONFIG").env_remove("DATABASE_URL");
    cmd
}

/// Runs `flowbot ARGS` in the repository root with `stdin` piped in, and returns its output.
pub fn run_with_input(args: &[&str], stdin: &str) -> Output {
    let mut cmd = flowbot();
    cmd.args(args);
    run(cmd, stdin.as_bytes())
}

/// Runs a command with `input` on its standard input (written from a thread, so a child that
/// prints much before reading all of it cannot deadlock), and returns its output.
pub fn run(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flowbot");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may exit without reading everything; that is its business.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("flowbot output");
    writer.join().expect("stdin writer");
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// The G-MIS flow as shipped, with its parameters' defaults.
pub fn gmis() -> Flow {
    gmis_with(&Params::new())
}

pub fn gmis_with(params: &Params) -> Flow {
    let path = root().join("flows/gmis-mail-trouble.yaml");
    let source = std::fs::read_to_string(&path).expect("read the G-MIS flow");
    load_flow(&source, "flows/gmis-mail-trouble.yaml", params).expect("the G-MIS flow loads")
}

/// A fresh, empty database for one test: a SQLite file in a temporary folder, or a database of
/// its own on the PostgreSQL server `DATABASE_URL` names (`./test.sh` starts one).
#[derive(Debug)]
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl TestDb {
    pub fn sqlite() -> Self {
        TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    pub async fn postgres() -> Self {
        use sqlx::{Connection, Executor};
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let admin = std::env::var("DATABASE_URL").unwrap_or_default();
        assert!(
            admin.starts_with("postgres"),
            "DATABASE_URL must name a PostgreSQL server for the store suite: run ./test.sh"
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name =
            format!("t_{}_{}_{nanos:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to DATABASE_URL");
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
        conn.close().await.expect("close");
        TestDb::Postgres { admin, name }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => {
                format!("sqlite://{}", dir.path().join("flowbot.sqlite").display())
            }
            TestDb::Postgres { admin, name } => {
                let base = admin.split('?').next().unwrap_or(admin);
                let base = &base[..base.rfind('/').expect("a database in DATABASE_URL")];
                format!("{base}/{name}")
            }
        }
    }

    pub async fn store(&self) -> flowbot_store::SqlStore {
        flowbot_store::SqlStore::open(&self.url()).await.expect("open the store")
    }

    /// Drops a PostgreSQL test database (a SQLite folder goes with the value).
    pub async fn cleanup(self) {
        use sqlx::{Connection, Executor};
        if let TestDb::Postgres { admin, name } = &self
            && let Ok(mut conn) = sqlx::PgConnection::connect(admin).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = conn.execute(drop.as_str()).await;
        }
    }
}
