//! The only code that touches the kernel.

pub mod conntrack;
mod error;
mod forwarding;
mod kernel;
pub mod ndisc;
pub mod ndp;
pub mod nft;
pub mod sysctl;

pub use conntrack::{ConntrackError, DnatTarget, delete_dnat_flows};
pub use error::HostError;
pub use forwarding::forwarding_enabled_by_dock6;
pub use kernel::{
    ApplyError, ApplyReport, CleanupReport, Kernel, LinuxKernel, TableAction, apply_host,
    apply_plan, cleanup, removed_dnat_targets,
};
pub use ndisc::{
    neighbour_advertisement, router_solicitation, send_router_solicitation, send_unsolicited_na,
};
pub use ndp::{
    DOCK6_NEIGH_PROTOCOL, ProxyNeighbour, ProxySyncReport, list_proxy_entries,
    remove_all_dock6_entries, sync_proxy_entries,
};
pub use sysctl::{SysctlAction, SysctlOutcome, apply_sysctl, read_sysctl};
