//! `rucat-bench report`: every benchmark with its baseline, in one run, as
//! one table. Burst and overhead runs each get a process of their own, so
//! peak memory is theirs alone and no run inherits another's garbage.

use std::path::PathBuf;
use std::time::Duration;

use crate::burst::Burst;
use crate::overhead::Latencies;
use crate::procs::{Binaries, run_json};
use crate::table::{self, Row};
use crate::{due, gateway, identity, idle, kinds, logs, many, rest, resume, spark, steady};

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
    pub steady: steady::Sizes,
    pub many: many::Sizes,
    pub identity: identity::Sizes,
    pub resume: resume::Sizes,
    pub logs: logs::Sizes,
    pub kinds: kinds::Sizes,
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
        steady: steady::Sizes {
            engines: 10_000,
            surreal_engines: 10_000,
            settle: Duration::from_secs(5),
            // The monitor's default resync interval: one sweep falls inside.
            window: Duration::from_secs(30),
            running_timeout: Duration::from_secs(300),
        },
        many: many::Sizes {
            engines: 100_000,
            running_timeout: Duration::from_secs(300),
            wrk_duration: Duration::from_secs(10),
            due_small: 1000,
            due_large: 100_000,
        },
        identity: identity::Sizes {
            engines: 20_000,
            argon2_users: 5,
            wrk_duration: Duration::from_secs(10),
        },
        resume: resume::Sizes {
            rounds: 3,
            engines: 1000,
            settle: Duration::from_secs(5),
            // As long as h's: a monitor resync sweep falls inside.
            window: Duration::from_secs(30),
            running_timeout: Duration::from_secs(300),
        },
        logs: logs::Sizes {
            big_lines: 2_000_000,
            stopped_lines: 500_000,
            small_lines: 100,
            tail_requests: 50,
            stop_rounds: 3,
        },
        kinds: kinds::Sizes {
            rounds: 3,
            settle: Duration::from_secs(5),
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
        steady: steady::Sizes {
            engines: 1000,
            surreal_engines: 200,
            settle: Duration::from_secs(1),
            window: Duration::from_secs(3),
            running_timeout: Duration::from_secs(60),
        },
        many: many::Sizes {
            engines: 5000,
            running_timeout: Duration::from_secs(60),
            wrk_duration: Duration::from_secs(2),
            due_small: 1000,
            due_large: 10_000,
        },
        identity: identity::Sizes {
            engines: 2000,
            argon2_users: 3,
            wrk_duration: Duration::from_secs(2),
        },
        resume: resume::Sizes {
            rounds: 1,
            engines: 200,
            settle: Duration::from_secs(2),
            window: Duration::from_secs(5),
            running_timeout: Duration::from_secs(60),
        },
        logs: logs::Sizes {
            big_lines: 200_000,
            stopped_lines: 50_000,
            small_lines: 100,
            tail_requests: 20,
            stop_rounds: 1,
        },
        kinds: kinds::Sizes {
            rounds: 1,
            settle: Duration::from_secs(2),
        },
    };
}

pub struct Options {
    pub bin_dir: PathBuf,
    pub scale: Scale,
    pub spark: bool,
    /// Only these benchmarks (their letters), or all of them.
    pub only: Option<String>,
    /// Another build's binaries, for "(before)" rows of h and i.
    pub compare_bin_dir: Option<PathBuf>,
}

impl Options {
    fn runs(&self, letter: char) -> bool {
        let spark = !matches!(letter, 'd' | 'g' | 'k' | 'm') || self.spark;
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
    // This build, and the other one if asked, with the suffix of its rows.
    let mut builds = vec![(bins.clone(), "")];
    if let Some(dir) = &options.compare_bin_dir {
        builds.push((Binaries { dir: dir.clone() }, " (before)"));
    }

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

    if options.runs('h') {
        let sizes = &scale.steady;
        for (build, (bins, suffix)) in builds.iter().enumerate() {
            progress(format!(
                "h. steady state, {} Running engines, no activity{suffix}",
                sizes.engines
            ));
            let work = work.path().join(format!("h-{build}"));
            rows.extend(steady_rows(
                &steady::run(bins, &work, sizes).await?,
                sizes,
                suffix,
            ));
        }
    }

    if options.runs('i') {
        let sizes = &scale.many;
        for (build, (bins, suffix)) in builds.iter().enumerate() {
            progress(format!("i. {} engines in SQLite{suffix}", sizes.engines));
            let work = work.path().join(format!("i-{build}"));
            rows.extend(many_rows(
                &many::run(bins, &work, sizes).await?,
                sizes,
                suffix,
            ));
        }
        progress(format!(
            "i. due-list read, {} against {} engines (this build's store, in-process)",
            sizes.due_large, sizes.due_small
        ));
        let (small, large) = due::sizes(sizes.due_small, sizes.due_large)?;
        rows.extend(due_rows(&small, &large, sizes));
    }

    if options.runs('j') {
        progress("j. what identity and quotas cost".into());
        let sizes = &scale.identity;
        let work = work.path().join("j");
        rows.extend(identity_rows(
            &identity::run(&bins, &work, sizes).await?,
            sizes,
        ));
    }

    if options.runs('k') {
        let sizes = &scale.resume;
        progress(format!(
            "k. resume after an idle stop against a fresh start, {} rounds",
            sizes.rounds
        ));
        let work = work.path().join("k");
        let resumed = resume::resume(&bins, &work, sizes).await?;
        progress(format!(
            "k. {} idle-tracked Running engines at rest",
            sizes.engines
        ));
        let at_rest = resume::at_rest(&bins, &work, sizes).await?;
        rows.extend(resume_rows(&resumed, &at_rest, sizes));
    }

    if options.runs('l') {
        let sizes = &scale.logs;
        progress(format!(
            "l. engine logs: a {} MB log archived, tailed and streamed; stops archiving {} MB",
            sizes.big_lines / 10_000,
            sizes.stopped_lines / 10_000
        ));
        let work = work.path().join("l");
        rows.extend(logs_rows(&logs::run(&bins, &work, sizes).await?));
    }

    if options.runs('m') {
        progress(
            "m. engine kinds: Sail against Spark, create → first query and idle memory".into(),
        );
        let work = work.path().join("m");
        rows.extend(kinds_rows(&kinds::run(&bins, &work, &scale.kinds).await?));
    }

    Ok(table::render(&rows))
}

fn kinds_rows(k: &kinds::Kinds) -> Vec<Row> {
    let (sail, spark) = (&k.sail, &k.spark);
    let versions = format!(
        "Sail {} vs Spark {}; median of {}",
        sail.version, spark.version, k.rounds
    );
    let processes = |n: usize| {
        if n == 1 {
            "1 process".to_owned()
        } else {
            format!("{n} processes")
        }
    };
    vec![
        Row {
            figure: format!(
                "m. create → first query through the gateway: Sail vs Spark ({versions})"
            ),
            value: format!("{:.2} s", sail.first_query_secs),
            baseline: format!("{:.2} s Spark", spark.first_query_secs),
            ratio: sail.first_query_secs / spark.first_query_secs,
            goal: "≥ 10× faster",
            met: Some(spark.first_query_secs >= 10.0 * sail.first_query_secs),
        },
        Row {
            figure: format!(
                "m. idle RSS of an engine, its process group {} s after its first query: Sail vs Spark ({versions})",
                k.settle.as_secs()
            ),
            value: format!("{} ({})", mb(sail.idle_rss_mb), processes(sail.processes)),
            baseline: format!(
                "{} Spark ({})",
                mb(spark.idle_rss_mb),
                processes(spark.processes)
            ),
            ratio: sail.idle_rss_mb / spark.idle_rss_mb,
            goal: "report it",
            met: None,
        },
    ]
}

fn logs_rows(l: &logs::Logs) -> Vec<Row> {
    let (big, small) = (
        format!("{:.0} MB", l.big_mb),
        format!("{:.0} KB", l.small_kb),
    );
    vec![
        Row {
            figure: format!(
                "l. GET /engine/{{id}}/logs?tail=100 p50 of {}, archived {big} log",
                l.tail_requests
            ),
            value: ms(l.tail_big_p50_ms),
            baseline: format!("{} archived {small} log", ms(l.tail_small_p50_ms)),
            ratio: l.tail_big_p50_ms / l.tail_small_p50_ms,
            goal: "≤ 2×",
            met: Some(l.tail_big_p50_ms <= 2.0 * l.tail_small_p50_ms),
        },
        Row {
            figure: format!("l. GET /engine/{{id}}/logs, the whole archived {big} log, MB/s"),
            value: format!("{:.0} MB/s", l.stream_mb_per_sec),
            baseline: format!(
                "{:.0} MB/s plain 64 KiB reads of the file",
                l.plain_read_mb_per_sec
            ),
            ratio: l.stream_mb_per_sec / l.plain_read_mb_per_sec,
            goal: "–",
            met: None,
        },
        Row {
            figure: format!(
                "l. server peak RSS growth streaming the {big} log{}",
                if l.peak_reset {
                    ""
                } else {
                    " (peak since start: not resettable)"
                }
            ),
            value: mb(l.streaming_rss_growth_mb),
            baseline: format!("{} idle server RSS", mb(l.idle_rss_mb)),
            ratio: l.streaming_rss_growth_mb / l.idle_rss_mb,
            goal: "bounded (< +64 MB)",
            met: Some(l.streaming_rss_growth_mb < 64.0),
        },
        Row {
            figure: format!(
                "l. stop → Terminated, {:.0} MB log archived (median of {})",
                l.stopped_mb, l.stop_rounds
            ),
            value: format!("{:.2} s", l.stop_big_secs),
            baseline: format!("{:.2} s {small} log", l.stop_small_secs),
            ratio: l.stop_big_secs / l.stop_small_secs,
            goal: "–",
            met: None,
        },
    ]
}

fn resume_rows(r: &resume::Resume, rest: &resume::AtRest, sizes: &resume::Sizes) -> Vec<Row> {
    let (value, base) = (&rest.tracked, &rest.untracked);
    let running = |q: &resume::Quiet| {
        if q.running < sizes.engines {
            format!(", only {} Running", count(q.running))
        } else {
            String::new()
        }
    };
    let head = format!(
        "k. {} idle-tracked Running engines (1 h timeout{}), 1 RPC each then none",
        count(sizes.engines),
        running(value)
    );
    let baseline = |v: f64| format!("{} idle_timeout_secs 0{}", per_sec(v), running(base));
    vec![
        Row {
            figure: format!(
                "k. resume: first query answered after an idle stop ({}; median of {}, {:.0} resumes counted)",
                r.stopped_reason, r.rounds, r.resumes
            ),
            value: format!("{:.2} s", r.resumed_secs),
            baseline: format!("{:.2} s fresh create → first query", r.fresh_secs),
            ratio: r.resumed_secs / r.fresh_secs,
            goal: "≤ 1.1×",
            met: Some(r.resumed_secs <= 1.1 * r.fresh_secs),
        },
        Row {
            figure: format!(
                "{head}: activity writes/s ({:.0} for the RPCs, before)",
                value.rpc_activity_writes
            ),
            value: per_sec(value.activity_writes_per_sec),
            baseline: baseline(base.activity_writes_per_sec),
            ratio: value.activity_writes_per_sec / base.activity_writes_per_sec,
            goal: "0",
            met: Some(value.activity_writes_per_sec == 0.0),
        },
        Row {
            figure: format!(
                "{head}: store writes/s ({:.0} idle stops)",
                value.idle_stops
            ),
            value: per_sec(value.store_writes_per_sec),
            baseline: baseline(base.store_writes_per_sec),
            ratio: value.store_writes_per_sec / base.store_writes_per_sec,
            goal: "0",
            met: Some(value.store_writes_per_sec == 0.0),
        },
    ]
}

fn identity_rows(c: &identity::Costs, sizes: &identity::Sizes) -> Vec<Row> {
    // Requests per second against a baseline, held to `goal`: `at_least`
    // of it.
    let row = |figure: String, pair: &identity::Pair, baseline, goal, at_least: f64| Row {
        figure,
        value: rps(pair.with),
        baseline: format!("{} {baseline}", rps(pair.without)),
        ratio: pair.with / pair.without,
        goal,
        met: Some(pair.with >= at_least * pair.without),
    };
    let mut rows: Vec<Row> = c
        .gets
        .iter()
        .map(|(provider, pair)| {
            let figure = format!("j. GET /engine/{{id}} req/s, {provider}");
            row(figure, pair, "no auth", "≥ 0.80 of no auth", 0.8)
        })
        .collect();
    rows.push(Row {
        figure: "j. a static user's first Basic request (argon2 check, uncached), p50".into(),
        value: ms(c.argon2_first_ms),
        baseline: format!("{} the next one (cached)", ms(c.argon2_cached_ms)),
        ratio: c.argon2_first_ms / c.argon2_cached_ms,
        goal: "–",
        met: None,
    });
    let figure = format!(
        "j. GET /engines?limit={} req/s as a user, {} engines ({} visible: 1% own, 1% shared)",
        many::PAGE,
        count(sizes.engines),
        count(c.visible)
    );
    rows.push(row(figure, &c.list, "as an admin", "≥ 0.50 of admin", 0.5));
    let quota = "≥ 0.80 of no quotas";
    let figure = format!(
        "j. POST /engine req/s with a quota (max_engines never reached; the owner's count reached {})",
        count(c.quota_count)
    );
    rows.push(row(figure, &c.create, "no quotas", quota, 0.8));
    let figure = format!(
        "j. POST /engine req/s with a quota, {} users in turn (trusted header; the most one has: {})",
        count(identity::SPREAD_USERS),
        count(c.spread_count)
    );
    rows.push(row(figure, &c.create_spread, "no quotas", quota, 0.8));
    rows
}

fn steady_rows(s: &steady::Steady, sizes: &steady::Sizes, suffix: &str) -> Vec<Row> {
    let idle = "idle server, 0 engines";
    let running = |running: usize, engines: usize| {
        if running < engines {
            format!(", only {} Running", count(running))
        } else {
            String::new()
        }
    };
    let head = format!(
        "h. steady state, {} engines{}",
        count(sizes.engines),
        running(s.running, sizes.engines)
    );
    let (value, base) = (&s.loaded, &s.idle);
    vec![
        Row {
            figure: format!("{head}: server CPU{suffix}"),
            value: format!("{:.2}% of a core", value.cpu_pct),
            baseline: format!("{:.2}% {idle}", base.cpu_pct),
            ratio: value.cpu_pct / base.cpu_pct,
            goal: "≤ 1% of a core",
            met: Some(value.cpu_pct <= 1.0),
        },
        Row {
            figure: format!("{head}: store writes/s{suffix}"),
            value: per_sec(value.writes_per_sec),
            baseline: format!("{} {idle}", per_sec(base.writes_per_sec)),
            ratio: value.writes_per_sec / base.writes_per_sec,
            goal: "0",
            met: Some(value.writes_per_sec == 0.0),
        },
        Row {
            figure: format!("{head}: disk bytes written/s{suffix}"),
            value: bytes_per_sec(value.disk_bytes_per_sec),
            baseline: format!("{} {idle}", bytes_per_sec(base.disk_bytes_per_sec)),
            ratio: value.disk_bytes_per_sec / base.disk_bytes_per_sec,
            goal: "0",
            met: Some(value.disk_bytes_per_sec == 0.0),
        },
        Row {
            figure: format!(
                "h. steady state, SurrealDB server, {} engines{}: LIVE messages/s per monitor{suffix}",
                count(sizes.surreal_engines),
                running(s.surreal.running, sizes.surreal_engines)
            ),
            value: per_sec(s.surreal.live_per_sec),
            baseline: format!("{} {idle}", per_sec(s.surreal.idle_live_per_sec)),
            ratio: s.surreal.live_per_sec / s.surreal.idle_live_per_sec,
            goal: "0",
            met: Some(s.surreal.live_per_sec == 0.0),
        },
    ]
}

fn many_rows(m: &many::Many, sizes: &many::Sizes, suffix: &str) -> Vec<Row> {
    let engines = count(sizes.engines);
    let all = m.running >= sizes.engines;
    let list = if m.paged {
        format!("GET /engines?limit={}", many::PAGE)
    } else {
        "GET /engines, the whole list (no limit param)".to_owned()
    };
    vec![
        Row {
            figure: format!(
                "i. {engines} creates ({} clients) → all Running{suffix}",
                many::CLIENTS
            ),
            value: if all {
                format!("{:.1} s", m.running_secs)
            } else {
                format!("> {:.0} s ({} Running)", m.running_secs, count(m.running))
            },
            baseline: format!("{:.1} s creates answered", m.creates_secs),
            ratio: m.running_secs / m.creates_secs,
            goal: "≤ 60 s",
            met: Some(all && m.running_secs <= 60.0),
        },
        Row {
            figure: format!("i. {engines} engines: server peak RSS{suffix}"),
            value: mb(m.peak_rss_mb),
            baseline: format!("{} at start", mb(m.start_rss_mb)),
            ratio: m.peak_rss_mb / m.start_rss_mb,
            goal: "≤ 150 MB",
            met: Some(m.peak_rss_mb <= 150.0),
        },
        Row {
            figure: format!("i. {engines} engines: {list} req/s{suffix}"),
            value: rps(m.list_rps),
            baseline: format!("{} GET /engine/{{id}}", rps(m.get_rps)),
            ratio: m.list_rps / m.get_rps,
            goal: "≥ 0.50 of GET /engine/{id}",
            met: Some(m.list_rps >= 0.5 * m.get_rps),
        },
    ]
}

fn due_rows(small: &due::DueRead, large: &due::DueRead, sizes: &many::Sizes) -> Vec<Row> {
    let (n, base) = (count(sizes.due_large), count(sizes.due_small));
    vec![
        Row {
            figure: format!(
                "i. due-list read of the first {}, {n} engines, 1% due",
                due::EQUAL
            ),
            value: ms(large.equal_ms),
            baseline: format!("{} at {base} engines", ms(small.equal_ms)),
            ratio: large.equal_ms / small.equal_ms,
            goal: "≤ 2×",
            met: Some(large.equal_ms <= 2.0 * small.equal_ms),
        },
        Row {
            figure: format!(
                "i. due-list read of up to {} (a monitor's), {n} engines, 1% due",
                large.monitor_limit
            ),
            value: ms(large.monitor_ms),
            baseline: format!("{} at {base} engines", ms(small.monitor_ms)),
            ratio: large.monitor_ms / small.monitor_ms,
            goal: "–",
            met: None,
        },
    ]
}

/// 100000 → "100,000".
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rate that should be zero: small ones keep their digits.
fn per_sec(v: f64) -> String {
    if v == 0.0 || v >= 10.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.2}/s")
    }
}

fn bytes_per_sec(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} MB/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} kB/s", v / 1e3)
    } else {
        format!("{v:.0} B/s")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(100_000), "100,000");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(999), "999");
        assert_eq!(count(0), "0");
    }

    #[test]
    fn rates() {
        assert_eq!(per_sec(0.0), "0/s");
        assert_eq!(per_sec(0.033), "0.03/s");
        assert_eq!(per_sec(19_876.4), "19876/s");
        assert_eq!(bytes_per_sec(0.0), "0 B/s");
        assert_eq!(bytes_per_sec(15_300_000.0), "15.3 MB/s");
    }
}
