//! Deleting the flows of one removed mapping (`delete_dnat_flows`) beside
//! 0 and 100,000 unrelated conntrack entries, filled with `conntrack -R`
//! (a file of `conntrack -I` lines) in the bench's namespace.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use dock6::apply::{DnatTarget, delete_dnat_flows};
use dock6::nft::L4Proto;

use crate::report::{Row, count, median, ms};

const RUNS: usize = 7;
const TARGET: &str = "fd00:b::2";

pub fn rows(scratch: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let target = DnatTarget {
        proto: L4Proto::Udp,
        host_port: 5353,
        target: TARGET.parse()?,
        target_port: 53,
    };
    let mut rows = Vec::new();
    for unrelated in [0, 100_000] {
        conntrack(&["-F"])?;
        fill(scratch, unrelated)?;
        let mut times = Vec::new();
        for run in 0..RUNS {
            // One DNAT'ed flow of the removed mapping, from a fresh client port.
            let sport = (40_000 + run).to_string();
            conntrack(&[
                "-I",
                "-s",
                "2001:db8:2::1",
                "-d",
                "2001:db8:1::10",
                "-p",
                "udp",
                "--sport",
                &sport,
                "--dport",
                "5353",
                "--dst-nat",
                &format!("[{TARGET}]:53"),
                "-t",
                "600",
            ])?;
            let t = Instant::now();
            let deleted = delete_dnat_flows(std::slice::from_ref(&target))?;
            times.push(t.elapsed());
            ensure!(deleted == 1, "deleted {deleted} flows, expected 1");
        }
        let time = median(&times);
        let row = Row::new(
            format!("conntrack: delete one removed mapping's flows, median of {RUNS}"),
            format!("{} unrelated entries", count(unrelated)),
            ms(time),
        );
        rows.push(match unrelated {
            0 => row,
            _ => row.target("≤ 5 ms", time <= Duration::from_millis(5)),
        });
    }
    conntrack(&["-F"])?;
    Ok(rows)
}

/// `n` established TCP entries between addresses no mapping uses.
fn fill(scratch: &std::path::Path, n: usize) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let mut lines = String::with_capacity(n * 120);
    for i in 0..n {
        let _ = writeln!(
            lines,
            "-I -s 2001:db8:3:{:x}::{:x} -d 2001:db8:4::{:x} -p tcp --sport {} --dport 443 --state ESTABLISHED -t 3600",
            i / 50_000,
            i % 50_000 + 1,
            i % 7 + 1,
            1024 + i % 50_000
        );
    }
    std::fs::write(scratch, lines).with_context(|| format!("write {}", scratch.display()))?;
    let file = scratch.display().to_string();
    conntrack(&["-R", &file])?;
    let _ = std::fs::remove_file(scratch);
    let counted = String::from_utf8_lossy(&Command::new("conntrack").arg("-C").output()?.stdout)
        .trim()
        .parse::<usize>()
        .unwrap_or(0);
    ensure!(counted >= n, "conntrack -C counts {counted}, expected {n}");
    Ok(())
}

fn conntrack(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("conntrack").args(args).output()?;
    if !out.status.success() {
        bail!(
            "conntrack {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
