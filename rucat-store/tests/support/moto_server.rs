//! A real S3-compatible server for the S3 log archive's tests: moto's
//! server (`moto[server]` from PyPI, installed by scripts/install-deps),
//! started as `python3 -m moto.server` on a free port of 127.0.0.1 and
//! killed when dropped. Missing is a failure, not a skip.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rucat_core::Secret;
use rucat_core::logs::S3ArchiveConfig;

/// moto accepts any credentials; these stand for real ones.
pub const ACCESS_KEY_ID: &str = "rucat-test-key";
pub const SECRET_ACCESS_KEY: &str = "rucat-test-secret-do-not-print";

/// A running moto server, killed when dropped.
pub struct MotoServer {
    child: Child,
    port: u16,
    /// The server's output (it logs every request), read if it fails to start.
    log: tempfile::NamedTempFile,
}

impl MotoServer {
    pub fn start() -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 for the S3 test server ({e}): run scripts/install-deps")
            });
        let mut server = Self { child, port, log };
        server.wait_until_up();
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let stderr = std::fs::read_to_string(self.log.path()).unwrap_or_default();
                panic!(
                    "the S3 test server (python3 -m moto.server) exited with {status}: \
                     run scripts/install-deps to install moto[server].\n{stderr}"
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the S3 test server did not listen on {addr} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "creating bucket {bucket}");
    }

    /// An unsigned request's HTTP status.
    pub fn request(&self, method: &str, path: &str) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
    }

    /// An archive config for `bucket` on this server, with test credentials.
    pub fn config(&self, bucket: &str, prefix: &str) -> S3ArchiveConfig {
        S3ArchiveConfig {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: Some(self.endpoint()),
            region: "us-east-1".to_owned(),
            access_key_id: Some(ACCESS_KEY_ID.to_owned()),
            secret_access_key: Some(Secret::new(SECRET_ACCESS_KEY)),
            allow_http: true,
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
