//! Benchmark c: REST throughput of `rucat-server` (durable SQLite, no
//! monitor, default logging) against the bare axum handlers, endpoint by
//! endpoint, alternating so that both see the same machine.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::procs::{Binaries, Process};
use crate::{fleet, wrk};

/// Engines in the store while GETs are measured.
pub const ENGINES: usize = 1000;

/// Requests per second, rucat's and the bare handler's.
#[derive(Debug)]
pub struct Pair {
    pub rucat: f64,
    pub bare: f64,
}

#[derive(Debug)]
pub struct Rest {
    pub get_engine: Pair,
    pub list_engines: Pair,
    pub create: Pair,
}

pub async fn run(bins: &Binaries, work: &Path, duration: Duration) -> anyhow::Result<Rest> {
    let rucat = bins.start_server(&work.join("rest"), &json!({"embedded_monitor": false}))?;

    let mut command = Binaries::bare()?;
    command.args(["--engines", &ENGINES.to_string()]);
    let bare = Process::server(command, &work.join("bare-server.log"))?;

    let ids = seed(&rucat, ENGINES).await?;
    let one = format!("/engine/{}", ids[0]);
    let script = work.join("post.lua");
    wrk::write_post_script(&script)?;

    let measure = |path: &str, post: bool| -> anyhow::Result<Pair> {
        let script = post.then_some(script.as_path());
        Ok(Pair {
            bare: wrk::requests_per_sec(&bare.url(path)?, duration, script)?,
            rucat: wrk::requests_per_sec(&rucat.url(path)?, duration, script)?,
        })
    };
    let get_engine = measure(&one, false)?;
    let list_engines = measure("/engines", false)?;
    // Last: it adds engines, and the list must hold exactly ENGINES.
    let create = measure("/engine", true)?;
    Ok(Rest {
        get_engine,
        list_engines,
        create,
    })
}

/// Creates `count` engines through the API; returns their ids.
async fn seed(server: &Process, count: usize) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::new();
    let url = server.url("/engine")?;
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(fleet::create_one(&client, &url).await?);
    }
    Ok(ids)
}
