//! Rounds to ratios, and ratios to the printed table, `bench/results/latest.md` and the
//! JSON result file.
//!
//! Ratios are paired by round: in round *i* ringbox and each peer ran back to back (A B A
//! B), so `ratio_i = ringbox_i / peer_i` cancels most of the machine's drift between
//! rounds. The table quotes the median of those ratios and their min-max, and the median
//! and min-max of each server's own figures. A ratio above 1 means ringbox got more of
//! the figure (better for req/s, worse for memory: each scenario says which).

use std::fmt::Write as _;

use super::setup::Machine;

/// Which direction of a figure is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput: more is better.
    Higher,
    /// Memory, time: less is better.
    Lower,
}

/// One server's figure in one round.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Measurement {
    /// The scenario's figure (`None` when the measurement failed).
    pub value: Option<f64>,
    /// Everything else measured (latencies, bytes, statuses, memory).
    pub detail: serde_json::Value,
    /// Why there is no figure, or why it is suspect.
    pub error: Option<String>,
}

/// One round: every server once, in order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Round {
    /// 1-based.
    pub round: usize,
    /// Server name to its measurement, in the order they ran.
    #[serde(serialize_with = "serialize_results")]
    pub results: Vec<(String, Measurement)>,
}

/// Writes a round's results as `[{"server": name, "value": .., "detail": .., "error": ..}]`.
fn serialize_results<S: serde::Serializer>(
    results: &[(String, Measurement)],
    ser: S,
) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        server: &'a str,
        #[serde(flatten)]
        measurement: &'a Measurement,
    }
    ser.collect_seq(results.iter().map(|(server, measurement)| Entry {
        server,
        measurement,
    }))
}

/// A scenario's rounds and summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScenarioResult {
    /// Short id (`get-4k`).
    pub name: String,
    /// One line for tables.
    pub title: String,
    /// What it measures.
    pub description: String,
    /// Unit of the figure.
    pub unit: String,
    /// Which direction is good.
    pub better: Better,
    /// An example load command (wrk line, or a description of our client's load).
    pub command: String,
    /// All rounds.
    pub rounds: Vec<Round>,
    /// Per-peer comparison with ringbox.
    pub summary: Vec<Comparison>,
    /// Anything worth knowing (fallbacks, errors).
    pub notes: Vec<String>,
}

/// Median and range of one server's figures.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

/// Median of a non-empty slice (mean of the middle two for even counts).
pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// ringbox against one peer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// The peer's name.
    pub peer: String,
    /// ringbox's figures in the rounds where both have one.
    pub ringbox: Option<Spread>,
    /// The peer's figures in those rounds.
    pub other: Option<Spread>,
    /// `ringbox_i / peer_i` per paired round.
    pub ratio: Option<Spread>,
    /// Paired rounds.
    pub rounds: usize,
}

impl ScenarioResult {
    /// Every server's name, in first-seen order.
    pub fn servers(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for r in &self.rounds {
            for (n, _) in &r.results {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        names
    }

    /// All figures of one server.
    pub fn values(&self, server: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .filter_map(|r| {
                r.results
                    .iter()
                    .find(|(n, _)| n == server)
                    .and_then(|(_, m)| m.value)
            })
            .collect()
    }

    /// Computes the per-peer comparisons from the rounds.
    pub fn summarize(&mut self) {
        self.summary.clear();
        for peer in self.servers() {
            if peer == "ringbox" {
                continue;
            }
            let mut a = Vec::new();
            let mut b = Vec::new();
            let mut ratios = Vec::new();
            for r in &self.rounds {
                let get = |name: &str| {
                    r.results
                        .iter()
                        .find(|(n, _)| n == name)
                        .and_then(|(_, m)| m.value)
                };
                if let (Some(x), Some(y)) = (get("ringbox"), get(&peer)) {
                    a.push(x);
                    b.push(y);
                    if y > 0.0 {
                        ratios.push(x / y);
                    }
                }
            }
            let rounds = a.len();
            self.summary.push(Comparison {
                peer: peer.clone(),
                ringbox: spread(&a),
                other: spread(&b).or_else(|| spread(&self.values(&peer))),
                ratio: spread(&ratios),
                rounds,
            });
        }
    }
}

/// Formats a figure for tables: thousands separators for big numbers, 2-3 digits else.
pub fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_spread(s: &Option<Spread>) -> String {
    match s {
        Some(s) if s.n > 1 => format!(
            "{} ({}-{})",
            fmt_value(s.median),
            fmt_value(s.min),
            fmt_value(s.max)
        ),
        Some(s) => fmt_value(s.median),
        None => "-".into(),
    }
}

fn fmt_ratio(s: &Option<Spread>) -> String {
    match s {
        Some(s) if s.n > 1 => format!("**{:.2}×** ({:.2}-{:.2})", s.median, s.min, s.max),
        Some(s) => format!("**{:.2}×**", s.median),
        None => "-".into(),
    }
}

/// The whole run, as written to `bench/results/<timestamp>.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// The harness and how it was called.
    pub tool: String,
    /// The command line.
    pub command: String,
    /// UTC start time.
    pub started_at: String,
    /// UTC end time.
    pub finished_at: String,
    /// Commit and machine.
    pub machine: Machine,
    /// Durations, rounds, connections, pinning.
    pub settings: serde_json::Value,
    /// What was measured.
    pub scenarios: Vec<ScenarioResult>,
    /// Failures that left a scenario without figures.
    pub problems: Vec<String>,
}

impl RunReport {
    /// The Markdown report: header, one summary table, then per-scenario rounds.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "### Load run {}\n", self.started_at);
        let _ = writeln!(s, "- command: `{}`", self.command);
        let _ = writeln!(
            s,
            "- commit: `{}`{}",
            m.commit,
            if m.dirty { " (work tree modified)" } else { "" }
        );
        let _ = writeln!(
            s,
            "- machine: {} CPUs, {}, kernel {}",
            m.nproc, m.cpu_model, m.kernel
        );
        let versions: Vec<String> = m.versions.iter().map(|(n, v)| format!("{n} {v}")).collect();
        let _ = writeln!(s, "- peers: {}", versions.join(", "));
        let _ = writeln!(s, "- settings: {}", self.settings);
        let _ = writeln!(
            s,
            "- ratio = ringbox / peer per round (A B A B), median (min-max) over paired rounds\n"
        );
        let _ = writeln!(
            s,
            "| scenario | unit | ringbox | peer | peer figure | ringbox / peer | rounds |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
        for sc in &self.scenarios {
            let unit = match sc.better {
                Better::Higher => sc.unit.clone(),
                Better::Lower => format!("{} (lower is better)", sc.unit),
            };
            let rb = spread(&sc.values("ringbox"));
            if sc.summary.is_empty() {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | - | - | - | {} |",
                    sc.title,
                    unit,
                    fmt_spread(&rb),
                    sc.rounds.len()
                );
            }
            for c in &sc.summary {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    sc.title,
                    unit,
                    fmt_spread(if c.ringbox.is_some() { &c.ringbox } else { &rb }),
                    c.peer,
                    fmt_spread(&c.other),
                    fmt_ratio(&c.ratio),
                    c.rounds
                );
            }
        }
        let _ = writeln!(s);
        for sc in &self.scenarios {
            let _ = writeln!(s, "#### {}: {}\n", sc.name, sc.title);
            let _ = writeln!(s, "{}\n", sc.description);
            let _ = writeln!(s, "Load: `{}`\n", sc.command);
            let servers = sc.servers();
            let _ = writeln!(s, "| round | {} |", servers.join(" | "));
            let _ = writeln!(s, "| --- |{}", " --- |".repeat(servers.len()));
            for r in &sc.rounds {
                let cells: Vec<String> = servers
                    .iter()
                    .map(|name| match r.results.iter().find(|(n, _)| n == name) {
                        Some((_, m)) => match (m.value, &m.error) {
                            (Some(v), None) => fmt_value(v),
                            (Some(v), Some(_)) => format!("{} (!)", fmt_value(v)),
                            (None, _) => "failed".into(),
                        },
                        None => "-".into(),
                    })
                    .collect();
                let _ = writeln!(s, "| {} | {} |", r.round, cells.join(" | "));
            }
            for note in &sc.notes {
                let _ = writeln!(s, "\n- {note}");
            }
            let _ = writeln!(s);
        }
        if !self.problems.is_empty() {
            let _ = writeln!(s, "#### Problems\n");
            for p in &self.problems {
                let _ = writeln!(s, "- {}", p.replace('\n', "\n  "));
            }
        }
        s
    }
}

/// Collects per-scenario notes without duplicates.
pub fn note(notes: &mut Vec<String>, text: String) {
    if !notes.contains(&text) {
        notes.push(text);
    }
}

/// Write a run's JSON (`<dir>/<json_name>`) and Markdown (`<dir>/<md_name>`) and print
/// the Markdown and both paths to stdout.
pub fn write_results<T: serde::Serialize>(
    dir: &std::path::Path,
    json_name: &str,
    md_name: &str,
    report: &T,
    md: &str,
) -> Result<(), super::HarnessError> {
    use super::HarnessError;
    use std::io::Write as _;
    std::fs::create_dir_all(dir)
        .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
    let json_path = dir.join(json_name);
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| HarnessError::msg(format!("JSON: {e}")))?;
    std::fs::write(&json_path, json)
        .map_err(|e| HarnessError::io(format!("write {}", json_path.display()), e))?;
    let md_path = dir.join(md_name);
    std::fs::write(&md_path, md)
        .map_err(|e| HarnessError::io(format!("write {}", md_path.display()), e))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{md}");
    let _ = writeln!(
        out,
        "results: {} and {}",
        json_path.display(),
        md_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: Option<f64>) -> Measurement {
        Measurement {
            value: v,
            ..Measurement::default()
        }
    }

    #[test]
    fn spread_takes_the_middle() {
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn ratios_are_paired_by_round_and_skip_failed_rounds() {
        let round = |i, a, b| Round {
            round: i,
            results: vec![("ringbox".into(), m(a)), ("nginx".into(), m(b))],
        };
        let mut sc = ScenarioResult {
            name: "t".into(),
            title: "t".into(),
            description: String::new(),
            unit: "req/s".into(),
            better: Better::Higher,
            command: String::new(),
            rounds: vec![
                round(1, Some(200.0), Some(100.0)),
                round(2, Some(300.0), None),
                round(3, Some(150.0), Some(100.0)),
                round(4, Some(100.0), Some(100.0)),
            ],
            summary: Vec::new(),
            notes: Vec::new(),
        };
        sc.summarize();
        let c = &sc.summary[0];
        assert_eq!(c.peer, "nginx");
        assert_eq!(c.rounds, 3);
        let r = c.ratio.unwrap();
        assert_eq!((r.median, r.min, r.max), (1.5, 1.0, 2.0));
        assert_eq!(c.ringbox.unwrap().median, 150.0);
    }

    #[test]
    fn values_are_formatted_for_tables() {
        assert_eq!(fmt_value(52312.4), "52,312");
        assert_eq!(fmt_value(1234567.0), "1,234,567");
        assert_eq!(fmt_value(283.2), "283");
        assert_eq!(fmt_value(27.94), "27.9");
        assert_eq!(fmt_value(0.304), "0.30");
    }
}
