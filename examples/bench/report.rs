//! The one table the bench prints, the figures it is made of, and the same
//! table as JSON (with the figures the chart draws).

use std::time::Duration;

/// One line of the table: what was measured, at what size, the figure, and
/// the target it is held against (if any) with whether it is met; and the
/// figures of it the chart draws.
pub struct Row {
    pub measure: String,
    pub at: String,
    pub figure: String,
    pub target: String,
    pub met: Option<bool>,
    pub points: Vec<Point>,
}

/// Which of the chart's two panels a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// Milliseconds.
    Time,
    /// Megabytes.
    Rss,
}

/// One figure the chart draws: `value` of `series` with `containers`
/// running (or existing, for the synthetic view).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub panel: Panel,
    pub series: &'static str,
    pub containers: usize,
    pub value: f64,
}

impl Row {
    pub fn new(
        measure: impl Into<String>,
        at: impl Into<String>,
        figure: impl Into<String>,
    ) -> Row {
        Row {
            measure: measure.into(),
            at: at.into(),
            figure: figure.into(),
            target: String::new(),
            met: None,
            points: Vec::new(),
        }
    }

    /// Draws `value` in `panel` as a point of `series` at `containers`.
    pub fn point(
        mut self,
        panel: Panel,
        series: &'static str,
        containers: usize,
        value: f64,
    ) -> Row {
        self.points.push(Point {
            panel,
            series,
            containers,
            value,
        });
        self
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

pub fn print(machine: &str, command: &str, rows: &[Row]) {
    println!("{machine}");
    println!("command: {command}");
    println!();
    let widths = [
        column(rows, |r| &r.measure, "measure"),
        column(rows, |r| &r.at, "at"),
        column(rows, |r| &r.figure, "figure"),
        column(rows, |r| &r.target, "target"),
    ];
    let line = |cells: [&str; 5]| {
        println!(
            "| {:<w0$} | {:<w1$} | {:>w2$} | {:<w3$} | {:<4} |",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        )
    };
    line(["measure", "at", "figure", "target", "met"]);
    println!(
        "|{}|{}|{}|{}|------|",
        "-".repeat(widths[0] + 2),
        "-".repeat(widths[1] + 2),
        "-".repeat(widths[2] + 2),
        "-".repeat(widths[3] + 2)
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        line([&r.measure, &r.at, &r.figure, &r.target, met]);
    }
}

/// The table as JSON: the machine, the command, each row, and the points
/// the chart draws.
pub fn json(machine: &str, command: &str, rows: &[Row]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let points: Vec<serde_json::Value> = r
                .points
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "panel": match p.panel {
                            Panel::Time => "time_ms",
                            Panel::Rss => "rss_mb",
                        },
                        "series": p.series,
                        "containers": p.containers,
                        "value": p.value,
                    })
                })
                .collect();
            serde_json::json!({
                "measure": r.measure,
                "at": r.at,
                "figure": r.figure,
                "target": r.target,
                "met": r.met,
                "points": points,
            })
        })
        .collect();
    serde_json::json!({ "machine": machine, "command": command, "rows": rows })
}

/// Milliseconds, for the chart.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn column(rows: &[Row], cell: impl Fn(&Row) -> &String, header: &str) -> usize {
    rows.iter()
        .map(|r| cell(r).chars().count())
        .chain([header.len()])
        .max()
        .unwrap_or(0)
}

pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// The `p`-th percentile (0–100) of `samples`, nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 50.0)
}

/// `10000` → `10,000`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
