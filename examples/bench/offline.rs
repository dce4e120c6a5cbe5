//! Plan + encode, no kernel: the pure planner over a synthetic view, then
//! the netlink batch of the whole-table replace built (not sent).

use std::time::{Duration, Instant};

use dock6::apply::nftables::encode_replace_table;
use dock6::plan::{Policy, plan};
use dock6::snapshot::Snapshot;

use crate::report::{Row, count, median, ms};
use crate::synthetic;

const RUNS: usize = 5;
/// Container counts of the default run.
pub const SIZES: [usize; 5] = [1, 100, 1_000, 2_000, 10_000];

pub fn rows(sizes: &[usize]) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &n in sizes {
        let snapshot = Snapshot {
            host: synthetic::host(),
            networks: vec![synthetic::network()],
            containers: synthetic::containers(n),
            starting: Vec::new(),
        };
        let (mut plans, mut encodes) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let planned = plan(&Policy::default(), &snapshot);
            plans.push(t.elapsed());
            let t = Instant::now();
            bytes = encode_replace_table(&planned.ruleset)?;
            encodes.push(t.elapsed());
        }
        let at = format!("{}×10", count(n));
        let total: Duration = median(&plans) + median(&encodes);
        rows.push(Row::new(
            "plan + encode (no kernel), median of 5",
            at,
            format!(
                "{} (plan {}, encode {}, {} KiB)",
                ms(total),
                ms(median(&plans)),
                ms(median(&encodes)),
                bytes / 1024
            ),
        ));
    }
    Ok(rows)
}
