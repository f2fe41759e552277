//! A real SurrealDB server for tests: the `rucat-surreal-server` binary that
//! scripts/test builds from rucat-store/surreal-server, started on a free
//! port of 127.0.0.1 with root credentials.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rucat_store::{SurrealConfig, SurrealCredentials, surreal::Password};

/// The environment variable naming the server binary.
pub const BIN_VAR: &str = "RUCAT_SURREAL_BIN";

pub const USER: &str = "root";
pub const PASS: &str = "root-test-password";

/// The server binary. Missing is a failure, not a skip: these tests are the
/// only check of the remote store.
pub fn binary() -> PathBuf {
    let Some(path) = std::env::var_os(BIN_VAR) else {
        panic!(
            "{BIN_VAR} is not set: run scripts/test, or build the server with \
             `cargo build --release --manifest-path rucat-store/surreal-server/Cargo.toml` \
             and set {BIN_VAR}=$CARGO_TARGET_DIR/release/rucat-surreal-server"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{BIN_VAR}={} is not a file: run scripts/test or build rucat-store/surreal-server",
        path.display()
    );
    path
}

/// Where the server keeps its data.
#[derive(Clone)]
pub enum Storage {
    Memory,
    /// A SurrealKV directory, so the data survives a restart.
    SurrealKv(PathBuf),
}

/// A running server, killed when dropped.
pub struct SurrealServer {
    child: Option<Child>,
    port: u16,
    storage: Storage,
}

impl SurrealServer {
    pub fn start(storage: Storage) -> Self {
        let port = free_port();
        let mut server = Self {
            child: None,
            port,
            storage,
        };
        server.spawn();
        server
    }

    pub fn uri(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The store config for this server, in database `database`.
    pub fn config(&self, database: &str) -> SurrealConfig {
        SurrealConfig {
            credentials: Some(SurrealCredentials {
                username: USER.to_owned(),
                password: Password::new(PASS),
            }),
            database: database.to_owned(),
            ..SurrealConfig::new(self.uri())
        }
    }

    /// Kills the server (SIGKILL: no chance to say goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let storage = match &self.storage {
            Storage::Memory => "memory".to_owned(),
            Storage::SurrealKv(path) => format!("surrealkv://{}", path.display()),
        };
        let child = Command::new(binary())
            .args(["start", "--bind", &format!("127.0.0.1:{}", self.port)])
            .args(["--user", USER, "--pass", PASS, "--log", "warn", &storage])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the SurrealDB server");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(60));
    }
}

impl Drop for SurrealServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_for_port(port: u16, timeout: Duration) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < timeout,
            "SurrealDB server did not listen on {addr} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A unique database name per test, so tests sharing a server never meet.
pub fn unique_database(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
