//! Benchmark b: many engines asked for at once, until every one is Running,
//! with the instant resource manager. Reports the time and this process's
//! peak resident memory, so each burst runs in a process of its own.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::control_plane::{ControlPlane, StoreKind, request};
use crate::rss;

#[derive(Debug, Serialize, Deserialize)]
pub struct Burst {
    pub secs: f64,
    pub peak_rss_mb: f64,
}

pub async fn run(kind: StoreKind, engines: usize) -> anyhow::Result<Burst> {
    let mut plane = ControlPlane::start(kind).await?;
    let started = Instant::now();
    let creates: Vec<_> = (0..engines)
        .map(|_| {
            let engines = plane.engines.clone();
            tokio::spawn(async move { engines.create(request()).await })
        })
        .collect();
    for create in creates {
        create.await??;
    }
    let mut running = HashSet::with_capacity(engines);
    while running.len() < engines {
        let (id, _) = plane.reached.recv().await.context("the monitor stopped")?;
        running.insert(id);
    }
    let secs = started.elapsed().as_secs_f64();
    plane.stop().await?;
    Ok(Burst {
        secs,
        peak_rss_mb: rss::own_peak_mb()?,
    })
}
