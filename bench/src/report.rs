//! `rucat-bench report`: every benchmark with its baseline, in one run, as
//! one table. Burst and overhead runs each get a process of their own, so
//! peak memory is theirs alone and no run inherits another's garbage.

use std::path::PathBuf;
use std::time::Duration;

use crate::burst::Burst;
use crate::overhead::Latencies;
use crate::procs::{Binaries, run_json};
use crate::table::{self, Row};
use crate::{gateway, idle, rest, spark};

/// How big a run is.
pub struct Scale {
    pub overhead_engines: usize,
    pub burst_engines: usize,
    pub wrk_duration: Duration,
    pub spark_rounds: usize,
    /// Engines timed per wake-up run; without the feed each waits for the
    /// monitor's next check, half a second on average.
    pub wakeup_engines: usize,
    pub gateway: gateway::Sizes,
}

impl Scale {
    /// The sizes the issue asks for.
    pub const FULL: Scale = Scale {
        overhead_engines: 1000,
        burst_engines: 10_000,
        wrk_duration: Duration::from_secs(10),
        spark_rounds: 2,
        wakeup_engines: 40,
        gateway: gateway::Sizes {
            arrow_rows: 10_000_000,
            tiny_queries: 200,
            sessions: 100,
        },
    };
    /// A smoke run of every code path in well under a minute (plus Spark).
    pub const QUICK: Scale = Scale {
        overhead_engines: 100,
        burst_engines: 1000,
        wrk_duration: Duration::from_secs(2),
        spark_rounds: 1,
        wakeup_engines: 10,
        gateway: gateway::Sizes {
            arrow_rows: 1_000_000,
            tiny_queries: 30,
            sessions: 20,
        },
    };
}

pub struct Options {
    pub bin_dir: PathBuf,
    pub scale: Scale,
    pub spark: bool,
    /// Only these benchmarks (their letters), or all of them.
    pub only: Option<String>,
}

impl Options {
    fn runs(&self, letter: char) -> bool {
        let spark = !matches!(letter, 'd' | 'g') || self.spark;
        spark && self.only.as_ref().is_none_or(|only| only.contains(letter))
    }
}

pub async fn run(options: Options) -> anyhow::Result<String> {
    let bins = Binaries {
        dir: options.bin_dir.clone(),
    };
    let scale = &options.scale;
    let work = tempfile::Builder::new().prefix("rucat-bench-").tempdir()?;
    let mut rows = Vec::new();

    if options.runs('a') {
        progress(format!(
            "a. create → Running, {} engines",
            scale.overhead_engines
        ));
        let engines = scale.overhead_engines.to_string();
        let sqlite: Latencies =
            run_json(&["overhead", "--store", "sqlite", "--engines", &engines])?;
        let surreal: Latencies =
            run_json(&["overhead", "--store", "surreal", "--engines", &engines])?;
        let memory: Latencies =
            run_json(&["overhead", "--store", "memory", "--engines", &engines])?;
        for (store, overhead) in [("SQLite", &sqlite), ("SurrealKV", &surreal)] {
            let [p50, p99] = latency_rows(
                |p| format!("a. create→Running {p} ({store})"),
                overhead,
                (&memory, "in-memory store"),
            );
            rows.push(Row {
                goal: "≤ 10 ms",
                met: Some(overhead.p50_ms <= 10.0),
                ..p50
            });
            rows.push(p99);
        }
    }

    if options.runs('b') {
        progress(format!("b. burst of {} engines", scale.burst_engines));
        let engines = scale.burst_engines.to_string();
        let sqlite: Burst = run_json(&["burst", "--store", "sqlite", "--engines", &engines])?;
        let memory: Burst = run_json(&["burst", "--store", "memory", "--engines", &engines])?;
        rows.push(Row {
            figure: format!("b. burst {} → all Running (SQLite)", scale.burst_engines),
            value: format!("{:.2} s", sqlite.secs),
            baseline: format!("{:.2} s in-memory store", memory.secs),
            ratio: sqlite.secs / memory.secs,
            goal: "≤ 20 s",
            met: Some(sqlite.secs <= 20.0),
        });
        rows.push(Row {
            figure: "b. burst peak RSS (SQLite)".into(),
            value: mb(sqlite.peak_rss_mb),
            baseline: format!("{} in-memory store", mb(memory.peak_rss_mb)),
            ratio: sqlite.peak_rss_mb / memory.peak_rss_mb,
            goal: "≤ 64 MB",
            met: Some(sqlite.peak_rss_mb <= 64.0),
        });
    }

    if options.runs('c') {
        progress("c. REST throughput with wrk".into());
        let rest = rest::run(&bins, work.path(), scale.wrk_duration).await?;
        for (figure, pair) in [
            ("c. GET /engine/{id} req/s", &rest.get_engine),
            ("c. GET /engines (1000 engines) req/s", &rest.list_engines),
        ] {
            rows.push(Row {
                figure: figure.into(),
                value: rps(pair.rucat),
                baseline: format!("{} bare axum", rps(pair.bare)),
                ratio: pair.rucat / pair.bare,
                goal: "≥ 0.50 of bare",
                met: Some(pair.rucat >= 0.5 * pair.bare),
            });
        }
        rows.push(Row {
            figure: "c. POST /engine req/s (durable SQLite)".into(),
            value: rps(rest.create.rucat),
            baseline: format!("{} bare axum", rps(rest.create.bare)),
            ratio: rest.create.rucat / rest.create.bare,
            goal: "≥ 3,000/s",
            met: Some(rest.create.rucat >= 3000.0),
        });
    }

    if options.runs('d') {
        progress("d. local Spark engine to its first query".into());
        let first = spark::run(&bins, work.path(), scale.spark_rounds).await?;
        rows.push(Row {
            figure: "d. local Spark: first query answered".into(),
            value: format!("{:.2} s", first.rucat_secs),
            baseline: format!("{:.2} s bare spark-submit", first.bare_secs),
            ratio: first.rucat_secs / first.bare_secs,
            goal: "–",
            met: None,
        });
    }

    if options.runs('g') {
        progress("g. the Spark Connect gateway against a direct connection".into());
        rows.extend(gateway_rows(
            &gateway::run(&bins, work.path(), &scale.gateway).await?,
            &scale.gateway,
        ));
    }

    if options.runs('e') {
        progress("e. idle memory".into());
        let idle = idle::run(&bins, work.path())?;
        for (figure, value) in [
            ("e. idle RSS rucat-server", idle.server_mb),
            ("e. idle RSS rucat-monitor", idle.monitor_mb),
        ] {
            rows.push(Row {
                figure: figure.into(),
                value: mb(value),
                baseline: format!("{} bare axum", mb(idle.bare_mb)),
                ratio: value / idle.bare_mb,
                goal: "–",
                met: None,
            });
        }
    }

    if options.runs('f') {
        progress(format!(
            "f. wake-up on another writer's engine, {} engines",
            scale.wakeup_engines
        ));
        let engines = scale.wakeup_engines.to_string();
        for (store, label) in [
            ("sqlite", "SQLite, in-process feed"),
            ("surreal-server", "SurrealDB server, LIVE query"),
        ] {
            let args = ["wakeup", "--store", store, "--engines", &engines];
            let fed: Latencies = run_json(&args)?;
            let polled: Latencies = run_json(&[&args[..], &["--no-feed"]].concat())?;
            rows.extend(latency_rows(
                |p| format!("f. write→Running {p} ({label})"),
                &fed,
                (&polled, "no feed, 1 s checks"),
            ));
        }
    }

    Ok(table::render(&rows))
}

fn gateway_rows(g: &gateway::Gateway, sizes: &gateway::Sizes) -> Vec<Row> {
    let (rows_per_sec, tiny, secs) = (g.arrow_rows_per_sec, g.tiny_p50_ms, g.sessions_secs);
    let millions = sizes.arrow_rows as f64 / 1e6;
    vec![
        Row {
            figure: format!("g. toArrow() of {millions:.0}M rows, rows/s through the gateway"),
            value: format!("{:.2}M/s", rows_per_sec.gateway / 1e6),
            baseline: format!("{:.2}M/s direct", rows_per_sec.direct / 1e6),
            ratio: rows_per_sec.gateway / rows_per_sec.direct,
            goal: "≥ 0.95 of direct",
            met: Some(rows_per_sec.gateway >= 0.95 * rows_per_sec.direct),
        },
        Row {
            figure: "g. select 1, p50 through the gateway".into(),
            value: ms(tiny.gateway),
            baseline: format!("{} direct", ms(tiny.direct)),
            ratio: tiny.gateway / tiny.direct,
            goal: "≤ 1 ms added",
            met: Some(tiny.gateway - tiny.direct <= 1.0),
        },
        Row {
            figure: "g. unary Config RPC, p50 through the gateway".into(),
            value: ms(g.config_rpc_p50_ms.gateway),
            baseline: format!("{} direct", ms(g.config_rpc_p50_ms.direct)),
            ratio: g.config_rpc_p50_ms.gateway / g.config_rpc_p50_ms.direct,
            goal: "≤ 1 ms added",
            met: Some(g.config_rpc_p50_ms.gateway - g.config_rpc_p50_ms.direct <= 1.0),
        },
        Row {
            figure: format!("g. server RSS while streaming {millions:.0}M rows"),
            value: mb(g.rss_streaming_mb),
            baseline: format!("{} before", mb(g.rss_before_mb)),
            ratio: g.rss_streaming_mb / g.rss_before_mb,
            goal: "bounded (< +64 MB)",
            met: Some(g.rss_streaming_mb - g.rss_before_mb < 64.0),
        },
        Row {
            figure: format!(
                "g. {} sessions at once: {} of {} answered, seconds",
                sizes.sessions, g.sessions_answered.0, sizes.sessions
            ),
            value: format!("{:.2} s", secs.gateway),
            baseline: format!(
                "{:.2} s direct ({} answered)",
                secs.direct, g.sessions_answered.1
            ),
            ratio: secs.gateway / secs.direct,
            goal: "all answered",
            met: Some(g.sessions_answered.0 == sizes.sessions as u64),
        },
    ]
}

/// The p50 and p99 rows of `value` against `baseline` (measured, and what it
/// was), without a goal; `figure` names the row for "p50" or "p99".
fn latency_rows(
    figure: impl Fn(&str) -> String,
    value: &Latencies,
    (baseline, what): (&Latencies, &str),
) -> [Row; 2] {
    let row = |p: &str, value: f64, baseline: f64| Row {
        figure: figure(p),
        value: ms(value),
        baseline: format!("{} {what}", ms(baseline)),
        ratio: value / baseline,
        goal: "–",
        met: None,
    };
    [
        row("p50", value.p50_ms, baseline.p50_ms),
        row("p99", value.p99_ms, baseline.p99_ms),
    ]
}

fn progress(what: String) {
    eprintln!("rucat-bench: {what}");
}

fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

fn mb(v: f64) -> String {
    format!("{v:.1} MB")
}

fn rps(v: f64) -> String {
    format!("{v:.0}/s")
}
