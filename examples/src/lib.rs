//! A third-party resource manager, written only against the documented
//! `rucat_core::ResourceManager` contract: it runs any command as an engine.
//!
//! The command line is a template; `{port}` is replaced by a free port on
//! 127.0.0.1 and the engine is Running once that port accepts connections.
//! For example `python3 -m http.server {port} --bind 127.0.0.1` turns every
//! rucat engine into a small web server. It keeps its processes in memory, so
//! unlike the bundled local Spark manager it suits a single process (a server
//! with its embedded monitor, or an application embedding rucat-core).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use rucat_core::{EngineId, EngineSpec, ResourceError, ResourceManager, ResourceStatus};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// How long a stopped command gets to exit after SIGKILL before we give up waiting.
const KILL_WAIT: Duration = Duration::from_secs(5);

pub struct CommandResourceManager {
    program: String,
    args: Vec<String>,
    engines: Mutex<HashMap<EngineId, Engine>>,
}

struct Engine {
    child: Child,
    port: u16,
}

impl CommandResourceManager {
    /// `program` and `args` may contain `{port}`.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            engines: Mutex::new(HashMap::new()),
        }
    }

    /// The process id of an engine's command, if it was started here.
    pub async fn pid(&self, id: &EngineId) -> Option<u32> {
        self.engines.lock().await.get(id).and_then(|e| e.child.id())
    }
}

fn free_port() -> Result<u16, ResourceError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ResourceError::Unavailable(format!("no free port: {e}")))
}

#[async_trait]
impl ResourceManager for CommandResourceManager {
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        let mut engines = self.engines.lock().await;
        if engines.contains_key(&spec.id) {
            return Ok(()); // adopt: the contract makes create idempotent
        }
        let port = free_port()?;
        let fill = |s: &String| s.replace("{port}", &port.to_string());
        let child = Command::new(fill(&self.program))
            .args(self.args.iter().map(fill))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            // The command cannot run at all: retrying will not help.
            .map_err(|e| ResourceError::Rejected(format!("cannot run {}: {e}", self.program)))?;
        engines.insert(spec.id.clone(), Engine { child, port });
        Ok(())
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        let mut engines = self.engines.lock().await;
        let Some(engine) = engines.get_mut(id) else {
            return Ok(ResourceStatus::Gone);
        };
        match engine.child.try_wait() {
            Ok(Some(exit)) => {
                return Ok(ResourceStatus::Failed {
                    reason: format!("the command exited: {exit}"),
                });
            }
            Ok(None) => {}
            Err(e) => return Err(ResourceError::Unavailable(e.to_string())),
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, engine.port));
        let connect = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        );
        Ok(match connect.await {
            Ok(Ok(_)) => ResourceStatus::Running {
                endpoint: format!("http://{addr}"),
            },
            _ => ResourceStatus::PENDING,
        })
    }

    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError> {
        let Some(mut engine) = self.engines.lock().await.remove(id) else {
            return Ok(());
        };
        // start_kill fails only if the process already exited: fine either way.
        let _ = engine.child.start_kill();
        match tokio::time::timeout(KILL_WAIT, engine.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => Err(ResourceError::Unavailable(format!(
                "engine {id} did not exit after SIGKILL"
            ))),
        }
    }
}
