//! Chaos: two servers and three monitors sharing one store, monitors killed
//! with SIGKILL at random and started again, while 300 engines are created,
//! stopped, restarted and deleted at random through both servers. It runs
//! once on a SQLite file and once on a real SurrealDB server.
//!
//! The resource manager is `Markers` (`rucat_core::resource::marker`): it
//! creates instantly and records every creation in files that outlive the
//! killed processes. At the end every engine must be in the state its last
//! user action asked for, each start must have created its resource exactly
//! once (see `walk`), no resource may exist without a Running engine, and no
//! process may have panicked; servers and monitors must exit 0 on SIGTERM.
//!
//! `CHAOS_SEED=<n>` replays a run's choices (not its timing).

#[path = "../support/mod.rs"]
mod support;
#[allow(dead_code)]
#[path = "../../../rucat-store/tests/support/surreal_server.rs"]
mod surreal_server;

mod api;
mod cluster;
mod rng;
mod walk;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use api::{Api, Seen};
use cluster::Cluster;
use rng::Rng;
use rucat_core::EngineId;
use serde_json::{Value, json};
use surreal_server::{PASS, Storage, SurrealServer, USER, unique_database};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use walk::{Settled, Walked};

const ENGINES: usize = 300;
/// Engines walked at once: enough to keep every monitor busy, few enough that
/// polling them does not starve the processes under test on two cores.
const CONCURRENT_WALKS: usize = 60;
const MAX_STEPS: u64 = 8;
const SERVERS: usize = 2;
const MONITORS: usize = 3;
/// Short, so that a killed monitor's engines are taken over quickly.
const LEASE_SECS: u64 = 3;
/// The whole load phase must end within this.
const LOAD_DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_survive_monitors_killed_at_random() {
    let data = tempfile::tempdir().unwrap();
    chaos(data.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_survive_monitors_killed_at_random_on_surrealdb() {
    let data = tempfile::tempdir().unwrap();
    let surreal = SurrealServer::start(Storage::SurrealKv(data.path().join("surreal")));
    let database = json!({"Surreal": {
        "uri": surreal.uri(),
        "credentials": {"username": USER, "password": PASS},
        "database": unique_database("chaos"),
    }});
    chaos(data.path(), Some(database)).await;
}

/// The whole run on `database` (see [`Cluster::start`]).
async fn chaos(data: &std::path::Path, database: Option<Value>) {
    let seed = rng::seed();
    eprintln!("chaos seed {seed} (replay the choices with CHAOS_SEED={seed})");
    let set_up = Instant::now();
    let cluster = Cluster::start(data, database, SERVERS, MONITORS, LEASE_SECS);
    let api = Api::new(cluster.urls());

    let set_up = set_up.elapsed();
    let started = Instant::now();
    let chaos = cluster.unleash(seed ^ 0x5eed);
    let walks = tokio::time::timeout(LOAD_DEADLINE, walk_all(api.clone(), &cluster, seed)).await;
    let kills = chaos.stop();
    let load_time = started.elapsed();
    let walked = match walks {
        Ok(Ok(walked)) => walked,
        Ok(Err(err)) => panic!("{err:#}"),
        Err(_) => panic!("the load did not finish within {LOAD_DEADLINE:?}"),
    };

    // Every monitor up again; any lease a killed monitor held expires.
    let checked = Instant::now();
    cluster.revive_all();
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 2)).await;
    if let Err(err) = check_end_state(&api, &cluster, &walked).await {
        panic!("{err:#}");
    }

    let checked = checked.elapsed();
    let shut_down = Instant::now();
    let (unclean, panicked) = cluster.shut_down();
    let shut_down = shut_down.elapsed();
    assert!(unclean.is_empty(), "did not exit 0 on SIGTERM: {unclean:?}");
    assert!(!panicked, "a process panicked; see its log above");

    let creations: usize = walked.iter().map(|w| w.creations).sum();
    let certain: usize = walked.iter().map(|w| w.certain_starts).sum();
    let races: usize = walked.iter().map(|w| w.races).sum();
    let raced: usize = walked.iter().map(|w| w.races_created).sum();
    eprintln!(
        "chaos: {} engines, {kills} monitors killed, {creations} creations = {certain} starts \
         + {raced} of {races} racing windows; set-up {set_up:.1?}, load {load_time:.1?}, \
         end checks {checked:.1?}, shutdown {shut_down:.1?}",
        walked.len()
    );
}

/// Walks every engine, [`CONCURRENT_WALKS`] at a time.
async fn walk_all(api: Api, cluster: &Cluster, seed: u64) -> anyhow::Result<Vec<Walked>> {
    let mut rng = Rng::new(seed);
    let permits = Arc::new(Semaphore::new(CONCURRENT_WALKS));
    let mut walks = JoinSet::new();
    for i in 0..ENGINES {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let (api, dir) = (api.clone(), cluster.marker_dir.clone());
        let (engine_seed, steps) = (rng.next_u64(), 1 + rng.below(MAX_STEPS) as usize);
        walks.spawn(async move {
            let name = format!("chaos-{i}");
            let walked = walk::walk(api, dir, name.clone(), engine_seed, steps)
                .await
                .with_context(|| format!("walking {name}"));
            drop(permit);
            walked
        });
    }
    let mut walked = Vec::with_capacity(ENGINES);
    while let Some(done) = walks.join_next().await {
        walked.push(done??);
    }
    Ok(walked)
}

/// Once everything is quiet: each engine is as its walk left it, the
/// servers list exactly the engines not deleted, the markers are exactly the
/// Running engines, and nothing was created after a walk's last settle.
async fn check_end_state(api: &Api, cluster: &Cluster, walked: &[Walked]) -> anyhow::Result<()> {
    let mut rng = Rng::new(0);
    for w in walked {
        let seen = api.get(&mut rng, w.id.as_str()).await?;
        let as_left = match (&seen, w.last) {
            (Seen::NotFound, Settled::Gone) => true,
            (Seen::State { state, .. }, Settled::Running) => state == "Running",
            (Seen::State { state, .. }, Settled::Terminated) => state == "Terminated",
            _ => false,
        };
        ensure!(as_left, "{} is {seen:?}, but was left {:?}", w.id, w.last);
    }
    let existing: BTreeSet<String> = walked
        .iter()
        .filter(|w| w.last != Settled::Gone)
        .map(|w| w.id.to_string())
        .collect();
    for server in 0..api.server_count() {
        let listed: BTreeSet<String> = api.list(server).await?.into_iter().collect();
        ensure!(
            listed == existing,
            "server {server} lists {} engines, {} exist",
            listed.len(),
            existing.len()
        );
    }
    let records = walk::read_records(&cluster.marker_dir).await?;
    let running: BTreeSet<EngineId> = walked
        .iter()
        .filter(|w| w.last == Settled::Running)
        .map(|w| w.id.clone())
        .collect();
    ensure!(
        records.markers == running,
        "resources without a Running engine: {:?}; Running engines without one: {:?}",
        records.markers.difference(&running).collect::<Vec<_>>(),
        running.difference(&records.markers).collect::<Vec<_>>()
    );
    for w in walked {
        ensure!(
            records.creations_of(&w.id) == w.creations,
            "{} was created {} times, {} by its last settle",
            w.id,
            records.creations_of(&w.id),
            w.creations
        );
    }
    let known: BTreeSet<&EngineId> = walked.iter().map(|w| &w.id).collect();
    let strangers: Vec<_> = records
        .creations
        .keys()
        .filter(|id| !known.contains(id))
        .collect();
    ensure!(strangers.is_empty(), "created for no engine: {strangers:?}");
    Ok(())
}
