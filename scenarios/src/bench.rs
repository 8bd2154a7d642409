//! `tenure bench`: whole runs measured in one process and one report. The raw madsim
//! ping-pong over its `Endpoint` (the yardstick) and over tenure's own network (what
//! runs use: the limit under every run), the `standard` scenario against both, seeds per
//! second on one and two threads, peak memory, and how the cost grows with agents, clients
//! and virtual duration.
//!
//! Wall time is read only here, around whole runs, never inside one: the runs themselves stay
//! deterministic (each figure's runs print the same digests every time).

use crate::library::{self, Scenario};
use serde::Serialize;
use std::time::{Duration, Instant};
use tenure_sim::bench::{net_ping_pong, peak_rss, raw_ping_pong, reset_peak_rss, Raw};
use tenure_sim::run::RunConfig;

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Seeds of the standard scenario (run one after another on one thread).
    pub seeds: u64,
    /// Seeds of the seeds-per-second figure, on each thread count.
    pub sweep_seeds: u64,
    /// Messages of the raw ping-pong.
    pub raw_messages: u64,
    /// Seeds at each point of the growth measurements (0: leave them out).
    pub scaling_seeds: u64,
    /// The largest client count measured (1,000 in the full bench).
    pub max_clients: usize,
}

impl Options {
    /// The full bench (about a minute on two cores).
    pub fn full() -> Options {
        Options {
            seeds: 20,
            sweep_seeds: 60,
            raw_messages: 2_000_000,
            scaling_seeds: 2,
            max_clients: 1_000,
        }
    }

    /// A few seconds: the same figures, less steady.
    pub fn quick() -> Options {
        Options {
            seeds: 10,
            sweep_seeds: 20,
            raw_messages: 200_000,
            scaling_seeds: 1,
            max_clients: 100,
        }
    }
}

/// The machine the figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub os: &'static str,
    pub arch: &'static str,
    /// `release` or `debug` (figures from a debug build are not comparable).
    pub profile: &'static str,
}

/// The raw ping-pong.
#[derive(Clone, Debug, Serialize)]
pub struct RawFigures {
    pub messages: u64,
    pub wall_s: f64,
    pub msgs_per_s: f64,
}

/// The standard scenario, seeds run one after another on one thread.
#[derive(Clone, Debug, Serialize)]
pub struct StandardFigures {
    pub scenario: String,
    pub seeds: u64,
    pub virtual_s: f64,
    pub wall_s: f64,
    /// Virtual seconds per wall second.
    pub speedup_x: f64,
    /// Envelopes sent, all runs.
    pub messages: u64,
    pub msgs_per_s: f64,
    /// Client operations invoked, all runs.
    pub ops: u64,
    /// Seeds that broke a rule or did not finish (none expected).
    pub failed_seeds: Vec<u64>,
    /// Peak resident memory while these runs went, MiB (`null` where unknown).
    pub peak_rss_mib: Option<f64>,
}

/// Seeds per second of a short scenario on one and on two threads.
#[derive(Clone, Debug, Serialize)]
pub struct SeedsFigures {
    pub scenario: String,
    pub agents: usize,
    pub virtual_s_per_seed: f64,
    pub seeds: u64,
    pub seeds_per_s_jobs_1: f64,
    pub seeds_per_s_jobs_2: f64,
}

/// One point of a growth measurement: the mean over its seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub x: f64,
    pub wall_ms_per_run: f64,
    pub messages_per_run: f64,
    pub ops_per_run: f64,
    pub virtual_s_per_run: f64,
}

/// How the wall time of a run grows with one setting.
#[derive(Clone, Debug, Serialize)]
pub struct Growth {
    /// The setting varied (the others as in `standard`).
    pub setting: &'static str,
    pub points: Vec<Point>,
    /// Least-squares slope of wall ms per run against the setting.
    pub slope_ms_per_unit: f64,
    /// The exponent `k` of wall time ~ x^k between the first and last points: 1 is linear,
    /// 2 quadratic, below 1 a fixed cost that the setting does not pay.
    pub growth_exponent: f64,
    /// The same exponent for the messages sent: how much of the growth the workload itself
    /// brings.
    pub messages_exponent: f64,
}

/// Everything `tenure bench` prints.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub machine: Machine,
    /// The ping-pong over madsim's `Endpoint`.
    pub raw: RawFigures,
    /// The same ping-pong over tenure's network (`tenure_sim::net`), which every run uses.
    pub raw_net: RawFigures,
    pub standard: StandardFigures,
    /// The standard scenario's message rate over the madsim ping-pong's.
    pub ratio_full_vs_raw: f64,
    /// The standard scenario's message rate over the ping-pong's on tenure's network: the
    /// share of a run's time its messages' own delivery takes.
    pub ratio_full_vs_raw_net: f64,
    pub seeds: SeedsFigures,
    pub growth: Vec<Growth>,
    /// Peak resident memory of the whole bench process, MiB.
    pub peak_rss_mib: Option<f64>,
    pub targets: Vec<Target>,
}

/// A target the issue set, and whether this run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub want: f64,
    pub got: f64,
    pub met: bool,
}

/// The standard scenario, as built in.
pub fn standard_scenario() -> Scenario {
    library::built_in("standard").expect("standard is built in")
}

fn config_of(s: &Scenario) -> Result<RunConfig, String> {
    s.run_config()
}

/// Totals of some seeds run one after another.
#[derive(Default)]
struct Totals {
    wall: Duration,
    virtual_ms: u64,
    messages: u64,
    ops: u64,
    runs: u64,
    failed: Vec<u64>,
}

fn run_seeds(config: &RunConfig, seeds: std::ops::Range<u64>) -> Totals {
    let mut t = Totals::default();
    for seed in seeds {
        let start = Instant::now();
        let r = tenure_sim::run::run(config, seed);
        t.wall += start.elapsed();
        t.runs += 1;
        match r {
            Ok(r) => {
                t.virtual_ms += r.counters.virtual_ms;
                t.messages += r.counters.messages_sent;
                t.ops += r.counters.ops_invoked as u64;
                if !r.ok() {
                    t.failed.push(seed);
                }
            }
            Err(_) => t.failed.push(seed),
        }
    }
    t
}

fn mib(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / (1024.0 * 1024.0))
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let num: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

fn exponent(first: (f64, f64), last: (f64, f64)) -> f64 {
    if first.1 <= 0.0 || last.1 <= 0.0 || first.0 == last.0 {
        return 0.0;
    }
    (last.1 / first.1).ln() / (last.0 / first.0).ln()
}

fn growth(
    setting: &'static str,
    xs: &[f64],
    seeds: u64,
    make: impl Fn(f64) -> Result<RunConfig, String>,
    progress: &mut impl FnMut(&str),
) -> Result<Growth, String> {
    let mut points = Vec::new();
    for &x in xs {
        progress(&format!("growth: {setting} = {x}"));
        let t = run_seeds(&make(x)?, 1..1 + seeds);
        let n = t.runs.max(1) as f64;
        points.push(Point {
            x,
            wall_ms_per_run: t.wall.as_secs_f64() * 1e3 / n,
            messages_per_run: t.messages as f64 / n,
            ops_per_run: t.ops as f64 / n,
            virtual_s_per_run: t.virtual_ms as f64 / 1e3 / n,
        });
    }
    let wall: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.wall_ms_per_run)).collect();
    let msgs: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.messages_per_run)).collect();
    Ok(Growth {
        setting,
        slope_ms_per_unit: slope(&wall),
        growth_exponent: exponent(wall[0], wall[wall.len() - 1]),
        messages_exponent: exponent(msgs[0], msgs[msgs.len() - 1]),
        points,
    })
}

/// Runs the bench; `progress` hears what is being measured.
pub fn run(opts: Options, mut progress: impl FnMut(&str)) -> Result<Figures, String> {
    if opts.seeds == 0 || opts.sweep_seeds == 0 || opts.raw_messages < 2 {
        return Err("bench: seeds, sweep seeds and raw messages must be more than 0".into());
    }
    let machine = Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    };

    // Each ping-pong runs half its messages before the standard seeds and half after, so a
    // change of load on the machine meanwhile moves both sides of the ratios alike.
    let half = (opts.raw_messages / 2).max(2);
    progress("raw madsim ping-pong (first half)");
    let raw_before = raw_ping_pong(half, 64, 1);
    progress("ping-pong over tenure's network (first half)");
    let net_before = net_ping_pong(half, 64, 1);

    progress("the standard scenario");
    let std_scenario = standard_scenario();
    let config = config_of(&std_scenario)?;
    reset_peak_rss();
    let t = run_seeds(&config, 1..1 + opts.seeds);
    let wall_s = t.wall.as_secs_f64();
    let virtual_s = t.virtual_ms as f64 / 1e3;
    let standard = StandardFigures {
        scenario: std_scenario.name.clone(),
        seeds: opts.seeds,
        virtual_s,
        wall_s,
        speedup_x: virtual_s / wall_s,
        messages: t.messages,
        msgs_per_s: t.messages as f64 / wall_s,
        ops: t.ops,
        failed_seeds: t.failed,
        peak_rss_mib: mib(peak_rss()),
    };
    progress("raw madsim ping-pong (second half)");
    let raw = both_halves(raw_before, raw_ping_pong(half, 64, 2));
    progress("ping-pong over tenure's network (second half)");
    let raw_net = both_halves(net_before, net_ping_pong(half, 64, 2));
    let ratio_full_vs_raw = standard.msgs_per_s / raw.msgs_per_s;
    let ratio_full_vs_raw_net = standard.msgs_per_s / raw_net.msgs_per_s;

    progress("seeds per second");
    let mut three = standard_scenario();
    three.settings.agents = Some(3);
    three.settings.duration_ms = Some(10_000);
    let three_config = config_of(&three)?;
    let mut per_s = [0.0; 2];
    let mut virtual_per_seed = 0.0;
    for (i, jobs) in [1usize, 2].into_iter().enumerate() {
        let start = Instant::now();
        let results = tenure_sim::sweep(1..1 + opts.sweep_seeds, jobs, |seed| {
            tenure_sim::run::run(&three_config, seed).map(|r| r.counters.virtual_ms)
        });
        per_s[i] = opts.sweep_seeds as f64 / start.elapsed().as_secs_f64();
        let ms: u64 = results.iter().filter_map(|(_, r)| r.as_ref().ok()).sum();
        virtual_per_seed = ms as f64 / 1e3 / opts.sweep_seeds as f64;
    }
    let seeds = SeedsFigures {
        scenario: "standard with 3 agents, 10 virtual seconds".into(),
        agents: 3,
        virtual_s_per_seed: virtual_per_seed,
        seeds: opts.sweep_seeds,
        seeds_per_s_jobs_1: per_s[0],
        seeds_per_s_jobs_2: per_s[1],
    };

    let mut grown = Vec::new();
    if opts.scaling_seeds > 0 {
        let with = |f: &dyn Fn(&mut Scenario)| {
            let mut s = standard_scenario();
            f(&mut s);
            config_of(&s)
        };
        grown.push(growth(
            "agents",
            &[3.0, 5.0, 7.0, 9.0],
            opts.scaling_seeds,
            |x| with(&|s| s.settings.agents = Some(x as usize)),
            &mut progress,
        )?);
        let clients: Vec<f64> = [10.0, 100.0, 1_000.0]
            .into_iter()
            .filter(|c| *c <= opts.max_clients as f64)
            .collect();
        // Three registers per ten clients, as in `standard`: more clients on the same three
        // registers measure the linearizability search, not the simulation.
        grown.push(growth(
            "clients",
            &clients,
            opts.scaling_seeds,
            |x| {
                with(&|s| {
                    s.settings.clients = Some(x as usize);
                    s.settings.registers = Some((x as usize * 3 / 10).max(3));
                })
            },
            &mut progress,
        )?);
        grown.push(growth(
            "duration_s",
            &[10.0, 20.0, 40.0],
            opts.scaling_seeds,
            |x| with(&|s| s.settings.duration_ms = Some(x as u64 * 1_000)),
            &mut progress,
        )?);
    }

    let targets = vec![
        Target {
            name: "standard speedup_x >= 1000 (one core)",
            want: 1_000.0,
            got: standard.speedup_x,
            met: standard.speedup_x >= 1_000.0,
        },
        Target {
            name: "ratio_full_vs_raw >= 0.5",
            want: 0.5,
            got: ratio_full_vs_raw,
            met: ratio_full_vs_raw >= 0.5,
        },
        Target {
            name: "seeds_per_s_jobs_2 >= 300 (3 agents, 10 virtual s)",
            want: 300.0,
            got: seeds.seeds_per_s_jobs_2,
            met: seeds.seeds_per_s_jobs_2 >= 300.0,
        },
    ];
    Ok(Figures {
        machine,
        raw,
        raw_net,
        standard,
        ratio_full_vs_raw,
        ratio_full_vs_raw_net,
        seeds,
        growth: grown,
        peak_rss_mib: mib(peak_rss()),
        targets,
    })
}

/// A ping-pong's figures from its two halves.
fn both_halves(a: Raw, b: Raw) -> RawFigures {
    let messages = a.messages + b.messages;
    let wall_s = (a.wall + b.wall).as_secs_f64();
    RawFigures {
        messages,
        wall_s,
        msgs_per_s: messages as f64 / wall_s,
    }
}

/// The figures as a person reads them.
pub fn show(f: &Figures) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let m = &f.machine;
    let _ = writeln!(
        o,
        "machine: {} cores, {} {}, {} build",
        m.cores, m.os, m.arch, m.profile
    );
    let _ = writeln!(
        o,
        "raw madsim ping-pong   {:>12.0} msgs/s  ({} messages in {:.2} s)",
        f.raw.msgs_per_s, f.raw.messages, f.raw.wall_s
    );
    let _ = writeln!(
        o,
        "ping-pong, tenure net  {:>12.0} msgs/s  ({} messages in {:.2} s)",
        f.raw_net.msgs_per_s, f.raw_net.messages, f.raw_net.wall_s
    );
    let s = &f.standard;
    let _ = writeln!(
        o,
        "standard scenario      {:>12.0} msgs/s  ({} messages, {} seeds, {:.0} virtual s in {:.2} s)",
        s.msgs_per_s, s.messages, s.seeds, s.virtual_s, s.wall_s
    );
    let _ = writeln!(o, "  virtual s per wall s {:>12.0}x", s.speedup_x);
    let _ = writeln!(o, "  ratio to raw madsim  {:>12.2}", f.ratio_full_vs_raw);
    let _ = writeln!(
        o,
        "  ratio to tenure net  {:>12.2}",
        f.ratio_full_vs_raw_net
    );
    if let Some(p) = s.peak_rss_mib {
        let _ = writeln!(o, "  peak memory          {:>12.1} MiB", p);
    }
    if !s.failed_seeds.is_empty() {
        let _ = writeln!(o, "  seeds that failed:   {:?}", s.failed_seeds);
    }
    let d = &f.seeds;
    let _ = writeln!(
        o,
        "seeds per second ({}): {:.0} on --jobs 1, {:.0} on --jobs 2 ({} seeds each)",
        d.scenario, d.seeds_per_s_jobs_1, d.seeds_per_s_jobs_2, d.seeds
    );
    for g in &f.growth {
        let _ = writeln!(
            o,
            "growth with {}: {:.2} ms per unit, wall ~ x^{:.2}, messages ~ x^{:.2}",
            g.setting, g.slope_ms_per_unit, g.growth_exponent, g.messages_exponent
        );
        for p in &g.points {
            let _ = writeln!(
                o,
                "  {:>6} {:>10.1} ms/run {:>10.0} msgs/run {:>8.0} ops/run",
                p.x, p.wall_ms_per_run, p.messages_per_run, p.ops_per_run
            );
        }
    }
    if let Some(p) = f.peak_rss_mib {
        let _ = writeln!(o, "peak memory of the bench: {p:.1} MiB");
    }
    for t in &f.targets {
        let _ = writeln!(
            o,
            "target {}: {:.2} ({})",
            t.name,
            t.got,
            if t.met { "met" } else { "NOT met" }
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_and_exponents() {
        assert!((slope(&[(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]) - 2.0).abs() < 1e-9);
        assert!((exponent((10.0, 5.0), (100.0, 50.0)) - 1.0).abs() < 1e-9);
        assert!((exponent((10.0, 5.0), (100.0, 500.0)) - 2.0).abs() < 1e-9);
        assert_eq!(exponent((10.0, 0.0), (100.0, 5.0)), 0.0);
    }

    #[test]
    fn a_small_bench_gives_every_figure_under_its_json_name() {
        let opts = Options {
            seeds: 1,
            sweep_seeds: 2,
            raw_messages: 2_000,
            scaling_seeds: 0,
            max_clients: 10,
        };
        let mut heard = Vec::new();
        let f = run(opts, |what| heard.push(what.to_string())).unwrap();
        assert_eq!(f.raw.messages, 2_000);
        assert_eq!(f.raw_net.messages, 2_000);
        assert!(f.raw.msgs_per_s > 0.0 && f.standard.msgs_per_s > 0.0);
        assert!(f.standard.virtual_s >= 10.0, "{}", f.standard.virtual_s);
        assert!(f.standard.failed_seeds.is_empty());
        assert!(f.standard.ops > 0 && f.standard.messages > 0);
        assert!(f.seeds.seeds_per_s_jobs_1 > 0.0 && f.seeds.seeds_per_s_jobs_2 > 0.0);
        assert!(f.growth.is_empty());
        assert_eq!(f.targets.len(), 3);
        assert!(heard.iter().any(|h| h.contains("standard")));
        let json = serde_json::to_value(&f).unwrap();
        for key in [
            "/raw/msgs_per_s",
            "/standard/speedup_x",
            "/standard/msgs_per_s",
            "/standard/peak_rss_mib",
            "/ratio_full_vs_raw",
            "/ratio_full_vs_raw_net",
            "/raw_net/msgs_per_s",
            "/seeds/seeds_per_s_jobs_1",
            "/seeds/seeds_per_s_jobs_2",
            "/peak_rss_mib",
            "/machine/cores",
        ] {
            assert!(json.pointer(key).is_some(), "{key} in {json}");
        }
        let shown = show(&f);
        assert!(shown.contains("virtual s per wall s"), "{shown}");
        // Bad options are refused, not run.
        let none = Options { seeds: 0, ..opts };
        assert!(run(none, |_| {}).is_err());
    }

    #[test]
    fn growth_fits_wall_time_and_messages_against_the_setting() {
        let g = growth(
            "duration_s",
            &[1.0, 2.0],
            1,
            |x| {
                let mut s = standard_scenario();
                s.settings.agents = Some(3);
                s.settings.duration_ms = Some(x as u64 * 1_000);
                s.run_config()
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(g.points.len(), 2);
        assert!(g.points[1].messages_per_run > g.points[0].messages_per_run);
        assert!(g.points[1].virtual_s_per_run > g.points[0].virtual_s_per_run);
        assert!(g.messages_exponent > 0.0);
    }

    #[test]
    fn the_standard_scenario_is_what_the_bench_describes() {
        let c = standard_scenario().run_config().unwrap();
        assert_eq!(c.cluster.agents, 5);
        assert_eq!(c.clients, 10);
        assert_eq!(c.processes(), 10);
        assert_eq!(c.op_pause, Duration::from_millis(500));
        assert_eq!(
            c.cluster.tick * c.cluster.agent.raft.heartbeat_ticks,
            Duration::from_millis(100)
        );
        assert!(matches!(c.faults, tenure_sim::Faults::Swarm));
    }
}
