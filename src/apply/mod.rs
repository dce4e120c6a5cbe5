//! The only code that touches the kernel.

pub mod conntrack;
mod error;
#[cfg(test)]
mod fake;
mod forwarding;
mod icmp6_filter;
mod kernel;
pub mod listing;
mod memory;
pub mod ndisc;
pub mod ndp;
pub mod ndp_responder;
pub(crate) mod nfnetlink;
pub mod nftables;
mod pass;
pub mod probe;
pub mod progress;
pub mod routes;
pub mod sysctl;

pub use conntrack::{ConntrackError, DnatTarget, delete_dnat_flows, delete_prefix_flows};
pub use error::HostError;
pub use forwarding::forwarding_enabled_by_dock6;
pub use kernel::{ApplyError, CleanupReport, Kernel, LinuxKernel, TableAction, cleanup};
pub use memory::{give_large_frees_back, heap_in_use, release_free_memory};
pub use ndisc::{
    neighbour_advertisement, router_solicitation, send_router_solicitation, send_unsolicited_na,
};
pub use ndp::{
    DOCK6_NEIGH_PROTOCOL, ProxyNeighbour, ProxySyncReport, is_bridge_port, link_names,
    list_proxy_entries, list_with_names, remove_all_dock6_entries, sync_proxy_entries,
};
pub use nftables::DockerFirewall;
pub use pass::{
    ApplyReport, HostState, Part, Previous, SysctlPart, TableChange, apply_companion, apply_pass,
    apply_plan, apply_table_change, finish_pass, millis,
};
pub use routes::{
    DOCK6_ROUTE_PROTOCOL, Dock6Route, RouteSyncReport, list_dock6_routes, remove_all_dock6_routes,
    route_dump_connection, sync_host_routes,
};
pub use sysctl::{SysctlAction, SysctlOutcome, apply_sysctl, read_sysctl, sysctls_left_by_dock6};
