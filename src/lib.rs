//! dock6: gives Docker containers real IPv6.
//!
//! The pipeline: `source` (Docker, netlink, snapshot files) → `plan` (pure)
//! → `apply` (the only kernel code) → one reconcile loop.

pub mod agent_lock;
pub mod apply;
pub mod check;
pub mod cli;
pub mod config;
pub mod firewall_role;
pub mod nft;
pub mod plan;
pub mod privileges;
pub mod reconcile;
pub mod snapshot;
mod sorted_map;
pub mod source;
pub mod status;
pub mod text;
