//! The HTML report of one run: a single self-contained page (inline CSS and SVG, no script,
//! nothing fetched) that shows what happened against true time.
//!
//! - a timeline with a lane per agent (its role and term, down and paused bands, clock faults),
//!   a lane per lock, lease or leadership holder (what it believed it held and until when, in
//!   true time, with its token; its grants; its fenced writes, accepted or refused; its pauses
//!   and isolations), the expiries the agency applied, the network faults as bands, and the
//!   violations as red marks;
//! - the violations and warnings, each linked to the history records it names;
//! - a per-key view of the operations (invocation to completion per process, as a
//!   linearizability checker sees them), the keys named by a violation first and open;
//! - the faults carried out, and the history itself as a table every link lands in.
//!
//! The page is a function of the history and the report, so a seed's page is byte-identical
//! from one replay to the next.

use crate::check::Violation;
use crate::faults::Fault;
use crate::history::{Completion, Event, History, Record};
use crate::report::Report;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What the page says about the run besides its history.
pub struct Page<'a> {
    /// The scenario's name.
    pub scenario: &'a str,
    /// Its one-line description.
    pub about: &'a str,
    pub report: &'a Report,
    /// A command that replays the run.
    pub replay: String,
}

/// Width of the plot area of a timeline, and of the label column, in px.
const PLOT: f64 = 1200.0;
const LABEL: f64 = 140.0;
const ROW: f64 = 22.0;
/// The most operations drawn for one key (the rest are counted, not drawn).
const KEY_OPS: usize = 5_000;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn secs(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

/// A stretch of a lane: `[from, to)` in true µs.
struct Band {
    from: u64,
    to: u64,
    class: &'static str,
    label: String,
    title: String,
    record: usize,
}

/// A point on a lane.
struct Mark {
    at: u64,
    class: &'static str,
    title: String,
    record: usize,
}

#[derive(Default)]
struct Lane {
    name: String,
    bands: Vec<Band>,
    marks: Vec<Mark>,
}

impl Lane {
    fn named(name: String) -> Lane {
        Lane {
            name,
            ..Lane::default()
        }
    }

    /// Closes the open band of `class` (if any) at `at`.
    fn close(&mut self, open: &mut Option<usize>, at: u64) {
        if let Some(i) = open.take() {
            self.bands[i].to = at;
        }
    }

    fn open(&mut self, band: Band) -> usize {
        self.bands.push(band);
        self.bands.len() - 1
    }
}

/// One client operation, invocation to completion.
struct Op {
    process: u64,
    f: String,
    value: serde_json::Value,
    call: u64,
    ret: Option<u64>,
    result: Option<Completion>,
    out: serde_json::Value,
    invoke_record: usize,
    complete_record: Option<usize>,
}

/// Everything the page draws, read from the history.
struct Story {
    end: u64,
    net: Lane,
    faults: Vec<(usize, u64, Fault)>,
    agents: BTreeMap<u64, Lane>,
    holders: BTreeMap<u64, Lane>,
    expiries: Lane,
    node_of: BTreeMap<u64, String>,
    ops_by_key: BTreeMap<String, Vec<Op>>,
}

fn role_class(role: &str) -> &'static str {
    match role {
        "leader" => "leader",
        "candidate" => "candidate",
        "pre_candidate" => "precandidate",
        _ => "follower",
    }
}

fn read(h: &History) -> Story {
    let end = h.records.iter().map(|r| r.t_us).max().unwrap_or(0).max(1);
    let mut s = Story {
        end,
        net: Lane::named("network".into()),
        faults: Vec::new(),
        agents: BTreeMap::new(),
        holders: BTreeMap::new(),
        expiries: Lane::named("expiries".into()),
        node_of: BTreeMap::new(),
        ops_by_key: BTreeMap::new(),
    };
    // Open bands: per agent its role, down and paused; per process paused, cut off, dead, its
    // latest belief per resource; network-wide partition, loss, latency, clogs and delays.
    let mut role_open: BTreeMap<u64, Option<usize>> = BTreeMap::new();
    let mut down: BTreeMap<u64, Option<usize>> = BTreeMap::new();
    let mut paused: BTreeMap<u64, Option<usize>> = BTreeMap::new();
    let mut frozen: BTreeMap<u64, Option<usize>> = BTreeMap::new();
    let mut cut_off: BTreeMap<u64, Option<usize>> = BTreeMap::new();
    let mut belief: BTreeMap<(u64, String), Option<usize>> = BTreeMap::new();
    let mut partition = None;
    let mut loss = None;
    let mut latency = None;
    let mut links: BTreeMap<(u64, u64), Option<usize>> = BTreeMap::new();
    let mut expired: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut pending: BTreeMap<u64, (String, usize)> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        let t = r.t_us;
        match &r.event {
            Event::Role {
                agent, role, term, ..
            } => {
                let lane = s
                    .agents
                    .entry(*agent)
                    .or_insert_with(|| Lane::named(format!("agent-{agent}")));
                let open = role_open.entry(*agent).or_default();
                lane.close(open, t);
                *open = Some(lane.open(Band {
                    from: t,
                    to: end,
                    class: role_class(role),
                    label: if role == "leader" {
                        format!("T{term}")
                    } else {
                        String::new()
                    },
                    title: format!("{} in term {term}", role.replace('_', "-")),
                    record: i,
                }));
            }
            Event::Restored { agent, .. } => {
                s.agents
                    .entry(*agent)
                    .or_insert_with(|| Lane::named(format!("agent-{agent}")));
            }
            Event::Expire { key, revision, .. } if expired.insert((key.clone(), *revision)) => {
                s.expiries.marks.push(Mark {
                    at: t,
                    class: "expire",
                    title: format!("{key} expired at revision {revision}"),
                    record: i,
                });
            }
            Event::Invoke {
                process,
                op,
                f,
                key,
                value,
                ..
            } => {
                s.node_of.entry(*process).or_insert_with(|| r.node.clone());
                pending.insert(
                    *op,
                    (key.clone(), s.ops_by_key.get(key).map_or(0, Vec::len)),
                );
                s.ops_by_key.entry(key.clone()).or_default().push(Op {
                    process: *process,
                    f: f.clone(),
                    value: value.clone(),
                    call: t,
                    ret: None,
                    result: None,
                    out: serde_json::Value::Null,
                    invoke_record: i,
                    complete_record: None,
                });
            }
            Event::Complete {
                op, result, value, ..
            } => {
                if let Some((key, at)) = pending.remove(op) {
                    let o = &mut s.ops_by_key.get_mut(&key).expect("invoked")[at];
                    o.ret = Some(t);
                    o.result = Some(*result);
                    o.out = value.clone();
                    o.complete_record = Some(i);
                    let granted = matches!(o.f.as_str(), "acquire" | "lock" | "claim")
                        && *result == Completion::Ok
                        && o.out.is_u64();
                    if granted {
                        let lane = holder(&mut s.holders, o.process, &r.node);
                        lane.marks.push(Mark {
                            at: t,
                            class: "grant",
                            title: format!("{} {key}: granted token {}", o.f, o.out),
                            record: i,
                        });
                    }
                }
            }
            Event::Belief {
                process,
                resource,
                token,
                until_us,
                ..
            } => {
                s.node_of.entry(*process).or_insert_with(|| r.node.clone());
                let lane = holder(&mut s.holders, *process, &r.node);
                let open = belief.entry((*process, resource.clone())).or_default();
                // A new belief replaces the last one, which then ends here if not before.
                if let Some(j) = open.take() {
                    lane.bands[j].to = lane.bands[j].to.min(t);
                }
                if let Some(until) = until_us {
                    *open = Some(lane.open(Band {
                        from: t,
                        to: (*until).max(t),
                        class: "belief",
                        label: format!("#{token}"),
                        title: format!(
                            "believes it holds {resource} with token {token} until {}",
                            secs(*until)
                        ),
                        record: i,
                    }));
                }
            }
            Event::Fenced {
                process,
                resource,
                token,
                accepted,
                highest,
                ..
            } => {
                let lane = holder(
                    &mut s.holders,
                    *process,
                    s.node_of.get(process).map_or("", String::as_str),
                );
                lane.marks.push(Mark {
                    at: t,
                    class: if *accepted { "fenced" } else { "refused" },
                    title: if *accepted {
                        format!("{resource} accepted a write with token {token}")
                    } else {
                        format!("{resource} refused token {token} (it had seen {highest})")
                    },
                    record: i,
                });
            }
            Event::Fault { fault } => {
                s.faults.push((i, t, fault.clone()));
                let band = |class, label: String| Band {
                    from: t,
                    to: end,
                    class,
                    label: label.clone(),
                    title: label,
                    record: i,
                };
                match fault {
                    Fault::Partition { .. } => {
                        s.net.close(&mut partition, t);
                        partition = Some(s.net.open(band("cut", fault.to_string())));
                    }
                    Fault::Heal => {
                        s.net.close(&mut partition, t);
                        for open in links.values_mut() {
                            s.net.close(open, t);
                        }
                        for (p, open) in cut_off.iter_mut() {
                            if let Some(lane) = s.holders.get_mut(p) {
                                lane.close(open, t);
                            }
                        }
                    }
                    Fault::Clog { from, to } | Fault::Delay { from, to, .. } => {
                        let open = links.entry((*from, *to)).or_default();
                        s.net.close(open, t);
                        let removed = matches!(fault, Fault::Delay { max_ms: 0, .. });
                        if !removed {
                            *open = Some(s.net.open(band("slow", fault.to_string())));
                        }
                    }
                    Fault::Unclog { from, to } => {
                        s.net.close(links.entry((*from, *to)).or_default(), t);
                    }
                    Fault::Loss { rate } => {
                        s.net.close(&mut loss, t);
                        if *rate > 0.0 {
                            loss = Some(s.net.open(band("slow", fault.to_string())));
                        }
                    }
                    Fault::Latency { min_ms, max_ms } => {
                        s.net.close(&mut latency, t);
                        if (*min_ms, *max_ms) != (1, 10) {
                            latency = Some(s.net.open(band("slow", fault.to_string())));
                        }
                    }
                    Fault::Kill { agent } | Fault::Restart { agent } => {
                        let lane = s
                            .agents
                            .entry(*agent)
                            .or_insert_with(|| Lane::named(format!("agent-{agent}")));
                        let open = down.entry(*agent).or_default();
                        lane.close(open, t);
                        lane.close(role_open.entry(*agent).or_default(), t);
                        if matches!(fault, Fault::Kill { .. }) {
                            *open = Some(lane.open(band("down", format!("agent-{agent} down"))));
                        }
                    }
                    Fault::Pause { agent } | Fault::Resume { agent } => {
                        let lane = s
                            .agents
                            .entry(*agent)
                            .or_insert_with(|| Lane::named(format!("agent-{agent}")));
                        let open = paused.entry(*agent).or_default();
                        lane.close(open, t);
                        if matches!(fault, Fault::Pause { .. }) {
                            *open =
                                Some(lane.open(band("paused", format!("agent-{agent} paused"))));
                        }
                    }
                    Fault::Clock { agent, .. } => {
                        let lane = s
                            .agents
                            .entry(*agent)
                            .or_insert_with(|| Lane::named(format!("agent-{agent}")));
                        lane.marks.push(Mark {
                            at: t,
                            class: "clock",
                            title: fault.to_string(),
                            record: i,
                        });
                    }
                    Fault::PauseProcess { process } | Fault::ResumeProcess { process } => {
                        let name = s.node_of.get(process).cloned().unwrap_or_default();
                        let lane = holder(&mut s.holders, *process, &name);
                        let open = frozen.entry(*process).or_default();
                        lane.close(open, t);
                        if matches!(fault, Fault::PauseProcess { .. }) {
                            *open = Some(lane.open(band("paused", fault.to_string())));
                        }
                    }
                    Fault::IsolateProcess { process } => {
                        let name = s.node_of.get(process).cloned().unwrap_or_default();
                        let lane = holder(&mut s.holders, *process, &name);
                        let open = cut_off.entry(*process).or_default();
                        lane.close(open, t);
                        *open = Some(lane.open(band("cut", fault.to_string())));
                    }
                    Fault::KillProcess { process } | Fault::RestartProcess { process } => {
                        let name = s.node_of.get(process).cloned().unwrap_or_default();
                        holder(&mut s.holders, *process, &name)
                            .open(band("down", fault.to_string()));
                    }
                    Fault::ProcessClock { process, .. } => {
                        let name = s.node_of.get(process).cloned().unwrap_or_default();
                        holder(&mut s.holders, *process, &name).marks.push(Mark {
                            at: t,
                            class: "clock",
                            title: fault.to_string(),
                            record: i,
                        });
                    }
                    Fault::SeparateProcesses { a, b } => {
                        for p in [a, b] {
                            let name = s.node_of.get(p).cloned().unwrap_or_default();
                            holder(&mut s.holders, *p, &name).marks.push(Mark {
                                at: t,
                                class: "clock",
                                title: fault.to_string(),
                                record: i,
                            });
                        }
                    }
                    // Recorded as the fault they became.
                    Fault::KillLeader
                    | Fault::PauseLeader
                    | Fault::IsolateLeader
                    | Fault::PauseHolder
                    | Fault::ResumeProcesses => {}
                }
            }
            _ => {}
        }
    }
    // Lanes named before their process's first invocation get its node's name now.
    for (p, lane) in s.holders.iter_mut() {
        if lane.name.is_empty() {
            lane.name = s
                .node_of
                .get(p)
                .cloned()
                .unwrap_or_else(|| format!("process {p}"));
        }
    }
    s
}

fn holder<'a>(holders: &'a mut BTreeMap<u64, Lane>, process: u64, node: &str) -> &'a mut Lane {
    holders
        .entry(process)
        .or_insert_with(|| Lane::named(node.to_string()))
}

/// Renders the page.
pub fn html(page: &Page) -> String {
    let report = page.report;
    let h = &report.history;
    let story = read(h);
    let mut flagged: BTreeSet<usize> = BTreeSet::new();
    for v in report.violations.iter().chain(&report.warnings) {
        flagged.extend(v.records.iter().copied());
    }
    let mut o = String::new();
    let verdict = if report.violations.is_empty() {
        "<span class=\"ok\">every invariant held</span>".to_string()
    } else {
        format!(
            "<span class=\"bad\">{} violation{}</span>",
            report.violations.len(),
            if report.violations.len() == 1 {
                ""
            } else {
                "s"
            }
        )
    };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>tenure: {} seed {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>{} <small>seed {}</small> {verdict}</h1>\n<p>{}</p>\n\
         <p class=\"mono\">replay: {}<br>digest: {}</p>\n</header>\n",
        esc(page.scenario),
        report.seed,
        esc(page.scenario),
        report.seed,
        esc(page.about),
        esc(&page.replay),
        esc(&report.digest)
    );
    summary(&mut o, report);
    violations(&mut o, "violations", "Violations", &report.violations);
    violations(&mut o, "warnings", "Warnings", &report.warnings);
    timeline(&mut o, &story, report);
    keys(&mut o, &story, report, h);
    fault_table(&mut o, &story);
    records(&mut o, h, &flagged);
    o.push_str("</body>\n</html>\n");
    o
}

fn summary(o: &mut String, report: &Report) {
    let c = &report.counters;
    let rows = [
        ("virtual time", secs(c.virtual_ms * 1000)),
        ("history records", c.records.to_string()),
        (
            "messages sent / delivered",
            format!("{} / {}", c.messages_sent, c.messages_delivered),
        ),
        (
            "operations",
            format!(
                "{} ({} ok, {} failed, {} unknown)",
                c.ops_invoked, c.ops_ok, c.ops_failed, c.ops_indeterminate
            ),
        ),
        ("leader terms", c.leader_terms.to_string()),
        ("faults", c.faults.to_string()),
        ("expiries", c.expiries.to_string()),
        (
            "snapshots (installed)",
            format!("{} ({})", c.snapshots, c.snapshots_installed),
        ),
        ("holder beliefs", c.beliefs.to_string()),
        (
            "fenced writes accepted / refused",
            format!("{} / {}", c.fenced_accepted, c.fenced_rejected),
        ),
    ];
    o.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<table class=\"kv\">\n");
    for (k, v) in rows {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    o.push_str("</table>\n</section>\n");
}

fn violations(o: &mut String, id: &str, title: &str, list: &[Violation]) {
    let _ = writeln!(
        o,
        "<section id=\"{id}\">\n<h2>{title} ({})</h2>",
        list.len()
    );
    if list.is_empty() {
        o.push_str("<p>None.</p>\n</section>\n");
        return;
    }
    let class = if id == "violations" {
        "violation"
    } else {
        "warning"
    };
    o.push_str("<ol>\n");
    for (i, v) in list.iter().enumerate() {
        let links: Vec<String> = v
            .records
            .iter()
            .map(|r| format!("<a href=\"#r{r}\">record {r}</a>"))
            .collect();
        let _ = writeln!(
            o,
            "<li class=\"{class}\" id=\"{}{i}\"><b>{}</b>: {}{}</li>",
            &class[..1],
            esc(&v.rule.name()),
            esc(&v.message),
            if links.is_empty() {
                String::new()
            } else {
                format!(" <span class=\"links\">{}</span>", links.join(", "))
            }
        );
    }
    o.push_str("</ol>\n</section>\n");
}

/// x of true time `us` on a plot spanning `[from, to]`.
fn x_of(us: u64, from: u64, to: u64) -> f64 {
    LABEL + (us.saturating_sub(from)) as f64 / (to - from).max(1) as f64 * PLOT
}

fn axis(o: &mut String, from: u64, to: u64, y: f64, height: f64) {
    let span = (to - from).max(1);
    // A tick every 1, 2 or 5 x 10^k µs, about ten of them.
    let mut step = 1u64;
    while span / step > 12 {
        step = match step.to_string().as_bytes()[0] {
            b'1' => step * 2,
            b'2' => step / 2 * 5,
            _ => step * 2,
        };
    }
    let mut t = from.div_ceil(step) * step;
    while t <= to {
        let x = x_of(t, from, to);
        let _ = writeln!(
            o,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
            y + height,
            y - 4.0,
            secs(t)
        );
        t += step;
    }
}

fn lane_svg(o: &mut String, lane: &Lane, y: f64, end: u64) {
    let _ = writeln!(
        o,
        "<text class=\"lane\" x=\"4\" y=\"{:.1}\">{}</text>",
        y + ROW * 0.7,
        esc(&lane.name)
    );
    for b in &lane.bands {
        let (x1, x2) = (x_of(b.from, 0, end), x_of(b.to.max(b.from), 0, end));
        let (top, height) = match b.class {
            "belief" | "leader" | "follower" | "candidate" | "precandidate" => (y + 3.0, ROW - 6.0),
            _ => (y + 1.0, ROW - 2.0),
        };
        let _ = write!(
            o,
            "<a href=\"#r{}\"><rect class=\"{}\" x=\"{x1:.1}\" y=\"{top:.1}\" width=\"{:.1}\" \
             height=\"{height:.1}\"><title>{} - {}: {}</title></rect>",
            b.record,
            b.class,
            (x2 - x1).max(0.8),
            secs(b.from),
            secs(b.to),
            esc(&b.title)
        );
        if !b.label.is_empty() && x2 - x1 > 8.0 * b.label.len() as f64 {
            let _ = write!(
                o,
                "<text class=\"in\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x1 + 2.0,
                y + ROW * 0.68,
                esc(&b.label)
            );
        }
        o.push_str("</a>\n");
    }
    for m in &lane.marks {
        let x = x_of(m.at, 0, end);
        let _ = writeln!(
            o,
            "<a href=\"#r{}\"><path class=\"{}\" d=\"M{x:.1} {:.1} l-4 -7 h8 z\"><title>{}: \
             {}</title></path></a>",
            m.record,
            m.class,
            y + ROW - 2.0,
            secs(m.at),
            esc(&m.title)
        );
    }
}

fn timeline(o: &mut String, s: &Story, report: &Report) {
    let mut lanes: Vec<&Lane> = vec![&s.net];
    lanes.extend(s.agents.values());
    lanes.push(&s.expiries);
    lanes.extend(s.holders.values());
    let top = 30.0;
    let marks_y = top + ROW * lanes.len() as f64;
    let height = marks_y + ROW * 2.0 + 10.0;
    let _ = writeln!(
        o,
        "<section id=\"timeline\">\n<h2>Timeline (true time)</h2>\n<p class=\"legend\">\
         <span class=\"k leader\"></span>leader (term) <span class=\"k candidate\"></span>\
         candidate <span class=\"k follower\"></span>follower <span class=\"k down\"></span>down \
         or dead <span class=\"k paused\"></span>paused <span class=\"k cut\"></span>cut off \
         <span class=\"k slow\"></span>slowed or lossy link <span class=\"k belief\"></span>a \
         holder's belief (token) <span class=\"m grant\"></span>grant \
         <span class=\"m fenced\"></span>fenced write <span class=\"m refused\"></span>refused \
         write <span class=\"m expire\"></span>expiry <span class=\"m clock\"></span>clock fault \
         <span class=\"m fault\"></span>fault <span class=\"m vmark\"></span>violation</p>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{height:.0}\">",
        LABEL + PLOT + 20.0
    );
    axis(o, 0, s.end, top, height - top);
    for (i, lane) in lanes.iter().enumerate() {
        let y = top + ROW * i as f64;
        if i % 2 == 1 {
            let _ = writeln!(
                o,
                "<rect class=\"stripe\" x=\"0\" y=\"{y:.1}\" width=\"{:.0}\" height=\"{ROW}\"/>",
                LABEL + PLOT
            );
        }
        lane_svg(o, lane, y, s.end);
    }
    // Every fault carried out, and every violation (when its last record happened: when it
    // became visible), as marks under the lanes.
    let _ = writeln!(
        o,
        "<text class=\"lane\" x=\"4\" y=\"{:.1}\">faults</text>",
        marks_y + ROW * 0.7
    );
    for (record, at, fault) in &s.faults {
        let x = x_of(*at, 0, s.end);
        let _ = writeln!(
            o,
            "<a href=\"#r{record}\"><path class=\"fault\" data-record=\"{record}\" \
             d=\"M{x:.1} {:.1} l-4 -8 h8 z\"><title>{}: {}</title></path></a>",
            marks_y + ROW - 3.0,
            secs(*at),
            esc(&fault.to_string())
        );
    }
    let vy = marks_y + ROW;
    let _ = writeln!(
        o,
        "<text class=\"lane\" x=\"4\" y=\"{:.1}\">violations</text>",
        vy + ROW * 0.7
    );
    for (i, v) in report.violations.iter().enumerate() {
        let at = v
            .records
            .iter()
            .filter_map(|r| report.history.records.get(*r))
            .map(|r| r.t_us)
            .max()
            .unwrap_or(s.end);
        let x = x_of(at, 0, s.end);
        let _ = writeln!(
            o,
            "<a href=\"#v{i}\"><line class=\"vline\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" \
             y2=\"{:.1}\"/><circle class=\"vmark\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"5\"><title>{}: \
             {}</title></circle></a>",
            vy + ROW * 0.5,
            vy + ROW * 0.5,
            secs(at),
            esc(&v.rule.name())
        );
    }
    o.push_str("</svg>\n</section>\n");
}

fn short(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(37).collect::<String>())
    } else {
        s
    }
}

fn keys(o: &mut String, s: &Story, report: &Report, h: &History) {
    // Keys a violation names (through its records) come first, open.
    let mut named: BTreeSet<&str> = BTreeSet::new();
    for v in &report.violations {
        for r in &v.records {
            if let Some(Record {
                event: Event::Invoke { key, .. },
                ..
            }) = h.records.get(*r)
            {
                named.insert(key);
            }
        }
        for key in s.ops_by_key.keys() {
            if !key.is_empty() && v.message.contains(key.as_str()) {
                named.insert(key);
            }
        }
    }
    let mut order: Vec<&String> = s.ops_by_key.keys().collect();
    order.sort_by_key(|k| (!named.contains(k.as_str()), k.as_str()));
    let _ = writeln!(
        o,
        "<section id=\"keys\">\n<h2>Operations per key ({} keys)</h2>\n<p class=\"legend\">Each \
         bar runs from a call to its return, one row per process, as the linearizability \
         checker sees them: <span class=\"k okop\"></span>ok <span class=\"k failop\"></span>\
         failed (took no effect) <span class=\"k infoop\"></span>unknown (may take effect any \
         time after the call, or never); a red outline is named by a violation.</p>",
        order.len()
    );
    let flagged: BTreeSet<usize> = report
        .violations
        .iter()
        .flat_map(|v| v.records.iter().copied())
        .collect();
    // Keys written once (the runner's probes, one-off writes) go in one table at the end.
    let (single, order): (Vec<&String>, Vec<&String>) = order
        .into_iter()
        .partition(|k| s.ops_by_key[*k].len() == 1 && !named.contains(k.as_str()));
    for key in order {
        let ops = &s.ops_by_key[key];
        let hit = named.contains(key.as_str());
        let processes: BTreeSet<u64> = ops.iter().map(|op| op.process).collect();
        let from = ops.iter().map(|op| op.call).min().unwrap_or(0);
        let to = ops
            .iter()
            .map(|op| op.ret.unwrap_or(s.end))
            .max()
            .unwrap_or(s.end)
            .max(from + 1);
        let _ = writeln!(
            o,
            "<details class=\"key{}\" id=\"key-{}\"{}><summary>{} <small>({} operations, {} \
             processes)</small></summary>",
            if hit { " named" } else { "" },
            esc(&key.replace(['/', ' '], "_")),
            if hit { " open" } else { "" },
            if key.is_empty() {
                "(no key)".to_string()
            } else {
                esc(key)
            },
            ops.len(),
            processes.len()
        );
        let rows: BTreeMap<u64, usize> =
            processes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let top = 24.0;
        let height = top + ROW * rows.len() as f64 + 6.0;
        let _ = writeln!(
            o,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{height:.0}\">",
            LABEL + PLOT + 20.0
        );
        axis(o, from, to, top, height - top);
        for (p, i) in &rows {
            let name = s
                .node_of
                .get(p)
                .cloned()
                .unwrap_or_else(|| format!("process {p}"));
            let _ = writeln!(
                o,
                "<text class=\"lane\" x=\"4\" y=\"{:.1}\">{}</text>",
                top + ROW * *i as f64 + ROW * 0.7,
                esc(&name)
            );
        }
        for op in ops.iter().take(KEY_OPS) {
            let y = top + ROW * rows[&op.process] as f64 + 3.0;
            let x1 = x_of(op.call, from, to);
            let x2 = x_of(op.ret.unwrap_or(to), from, to);
            let class = match op.result {
                Some(Completion::Ok) => "okop",
                Some(Completion::Fail) => "failop",
                _ => "infoop",
            };
            let named_op = flagged.contains(&op.invoke_record)
                || op.complete_record.is_some_and(|r| flagged.contains(&r));
            let label = format!(
                "{}{} -> {}",
                op.f,
                match short(&op.value) {
                    v if v.is_empty() => String::new(),
                    v => format!(" {v}"),
                },
                match op.result {
                    Some(Completion::Ok) => short(&op.out),
                    Some(Completion::Fail) => "failed".into(),
                    _ => "unknown".into(),
                }
            );
            let _ = write!(
                o,
                "<a href=\"#r{}\"><rect class=\"{class}{}\" x=\"{x1:.1}\" y=\"{y:.1}\" \
                 width=\"{:.1}\" height=\"{:.1}\"><title>{} - {}: {}</title></rect>",
                op.invoke_record,
                if named_op { " flagged" } else { "" },
                (x2 - x1).max(1.0),
                ROW - 6.0,
                secs(op.call),
                op.ret.map_or("never returned".into(), secs),
                esc(&label)
            );
            if x2 - x1 > 6.5 * label.len() as f64 {
                let _ = write!(
                    o,
                    "<text class=\"in dark\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    x1 + 2.0,
                    y + ROW * 0.5,
                    esc(&label)
                );
            }
            o.push_str("</a>\n");
        }
        o.push_str("</svg>\n");
        if ops.len() > KEY_OPS {
            let _ = writeln!(
                o,
                "<p>The first {KEY_OPS} of {} operations are drawn; the table below has all.</p>",
                ops.len()
            );
        }
        o.push_str("</details>\n");
    }
    if !single.is_empty() {
        let _ = writeln!(
            o,
            "<details class=\"key\" id=\"single-keys\"><summary>{} keys with one operation \
             each</summary>\n<table>\n<tr><th>key</th><th>process</th><th>call</th><th>return\
             </th><th>operation</th></tr>",
            single.len()
        );
        for key in single {
            let op = &s.ops_by_key[key][0];
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td><a href=\"#r{}\">{}</a></td><td>{}</td><td>{} {} \
                 -> {}</td></tr>",
                esc(key),
                esc(s.node_of.get(&op.process).map_or("", String::as_str)),
                op.invoke_record,
                secs(op.call),
                op.ret.map_or("never".into(), secs),
                esc(&op.f),
                esc(&short(&op.value)),
                esc(&match op.result {
                    Some(Completion::Ok) => short(&op.out),
                    Some(Completion::Fail) => "failed".into(),
                    _ => "unknown".into(),
                })
            );
        }
        o.push_str("</table>\n</details>\n");
    }
    o.push_str("</section>\n");
}

fn fault_table(o: &mut String, s: &Story) {
    let _ = writeln!(
        o,
        "<section id=\"faults\">\n<h2>Faults ({})</h2>\n<table>\n<tr><th>true time</th>\
         <th>fault</th><th>record</th></tr>",
        s.faults.len()
    );
    for (record, at, fault) in &s.faults {
        let _ = writeln!(
            o,
            "<tr class=\"fault-row\"><td>{}</td><td>{}</td><td><a href=\"#r{record}\">{record}\
             </a></td></tr>",
            secs(*at),
            esc(&fault.to_string())
        );
    }
    o.push_str("</table>\n</section>\n");
}

fn records(o: &mut String, h: &History, flagged: &BTreeSet<usize>) {
    let _ = writeln!(
        o,
        "<section id=\"history\">\n<h2>History ({} records)</h2>\n<p>Every record but the \
         messages (those a violation names are kept); the ones a violation or warning names are \
         red.</p>\n<table class=\"records\">\n<tr><th>#</th><th>true time</th><th>node</th>\
         <th>record</th></tr>",
        h.records.len()
    );
    for (i, r) in h.records.iter().enumerate() {
        let hit = flagged.contains(&i);
        if matches!(r.event, Event::Message { .. }) && !hit {
            continue;
        }
        let text = serde_json::to_string(&r.event).expect("records serialize");
        let _ = writeln!(
            o,
            "<tr id=\"r{i}\"{}><td>{i}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            if hit { " class=\"hit\"" } else { "" },
            secs(r.t_us),
            esc(&r.node),
            esc(&text)
        );
    }
    o.push_str("</table>\n</section>\n");
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#1b1f24}
h1 small{color:#667;font-weight:normal}
h1 .ok,h1 .bad{font-size:60%;padding:2px 8px;border-radius:4px;vertical-align:middle}
.ok{background:#d7f5dd;color:#175c2a}.bad{background:#ffd9d6;color:#8a1208}
.mono,td.mono{font-family:ui-monospace,monospace;font-size:12px}
table{border-collapse:collapse}th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #e3e6ea}
table.kv th{font-weight:normal;color:#556}
li.violation{color:#8a1208}li.warning{color:#7a5a00}
tr.hit{background:#ffd9d6}tr:target{outline:2px solid #d1242f}li:target{background:#fff2b3}
svg{display:block;margin:6px 0 14px}
svg text{font:11px system-ui,sans-serif}
text.lane{fill:#334}text.tick{fill:#778;text-anchor:middle}
text.in{fill:#fff;pointer-events:none}text.in.dark{fill:#123}
line.grid{stroke:#eef0f3}rect.stripe{fill:#f7f8fa}
.leader{fill:#1f5fbf}.candidate{fill:#f0a030}.precandidate{fill:#f5d08a}.follower{fill:#cfd6e0}
.down{fill:#3a3f47;fill-opacity:.75}.paused{fill:#8d6fd1;fill-opacity:.55}
.cut{fill:#e0483e;fill-opacity:.35}.slow{fill:#e8a33d;fill-opacity:.3}
.belief{fill:#2e9e6a;fill-opacity:.8}
.grant{fill:#0b6b3a}.fenced{fill:#2e9e6a}.refused{fill:#d1242f}.expire{fill:#6b7685}
.clock{fill:#b15dd6}.fault{fill:#e07b00}
.vmark{fill:#d1242f}line.vline{stroke:#d1242f;stroke-dasharray:4 3}
.okop{fill:#bfe6c9}.failop{fill:#dfe2e6}.infoop{fill:#ffe0a8}
rect.flagged{stroke:#d1242f;stroke-width:2}
details.key{margin:4px 0}details.key.named>summary{color:#8a1208;font-weight:bold}
.legend .k,.legend .m{display:inline-block;width:14px;height:10px;margin:0 3px 0 10px;vertical-align:middle}
.legend .k.leader{background:#1f5fbf}.legend .k.candidate{background:#f0a030}
.legend .k.follower{background:#cfd6e0}.legend .k.down{background:#3a3f47}
.legend .k.paused{background:#c6b7e8}.legend .k.cut{background:#f3b6b2}.legend .k.slow{background:#f6dcb1}
.legend .k.belief{background:#2e9e6a}.legend .k.okop{background:#bfe6c9}
.legend .k.failop{background:#dfe2e6}.legend .k.infoop{background:#ffe0a8}
.legend .m{width:8px;height:8px;border-radius:50%}
.legend .m.grant{background:#0b6b3a}.legend .m.fenced{background:#2e9e6a}
.legend .m.refused{background:#d1242f}.legend .m.expire{background:#6b7685}
.legend .m.clock{background:#b15dd6}.legend .m.fault{background:#e07b00}
.legend .m.vmark{background:#d1242f}
";
