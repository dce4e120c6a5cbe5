//! The config file: `Config::parse` never panics, an accepted config keeps
//! its documented ranges, and an error names a line of the file.

#![no_main]

use std::path::Path;
use std::time::Duration;

use dock6::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("dock6.toml")) {
        Ok(config) => {
            let r = config.resync_interval;
            assert!(
                (Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&r),
                "resync_interval {r:?}"
            );
            let g = config.host_facts_grace;
            assert!(g <= Duration::from_secs(3600), "host_facts_grace {g:?}");
            let mark = config.policy.accept_mark;
            assert!(mark.is_power_of_two(), "accept_mark {mark:#x}");
            if let Some(uplink) = &config.policy.uplink {
                assert!(
                    (1..=15).contains(&uplink.len())
                        && uplink != "."
                        && uplink != ".."
                        && !uplink
                            .chars()
                            .any(|c| c == '/' || c == ':' || c.is_whitespace()),
                    "uplink {uplink:?}"
                );
            }
            if let Some(a) = config.policy.egress_address {
                assert!(
                    !a.is_unspecified()
                        && !a.is_loopback()
                        && !a.is_multicast()
                        && !a.is_unicast_link_local(),
                    "egress_address {a}"
                );
            }
        }
        Err(e @ ConfigError::Invalid { line, .. }) => {
            let lines = text.matches('\n').count() + 1;
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
            let _ = e.to_string();
        }
        Err(e) => panic!("parse of a text gave a read error: {e}"),
    }
});
