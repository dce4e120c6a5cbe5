//! dock6's `/128` host routes into bridges (`ip -6 route add ADDR/128 dev
//! BRIDGE proto 214`), over rtnetlink.
//!
//! Like its proxy-NDP entries, every route dock6 adds carries a tag of its
//! own: the route protocol [`DOCK6_ROUTE_PROTOCOL`]. Sync and cleanup only
//! ever delete routes with that tag; an operator's route for the same
//! address is left alone (the add then fails with EEXIST, reported).

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv6Addr;

use futures::TryStreamExt as _;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use tracing::info;

use super::ndp::link_indices;
use super::{HostError, progress};
use crate::plan::HostRoute;

/// The route protocol that marks a route as dock6's (`proto 214`, the same
/// number as its neighbour tag).
pub const DOCK6_ROUTE_PROTOCOL: u8 = 0xd6;

const RT_TABLE_MAIN: u8 = 254;

/// One of dock6's routes as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dock6Route {
    pub address: Ipv6Addr,
    pub ifindex: u32,
}

/// What [`sync_host_routes`] did.
#[derive(Debug, Default)]
pub struct RouteSyncReport {
    pub added: Vec<HostRoute>,
    pub removed: Vec<Dock6Route>,
    /// Per-route failures (the others were still applied).
    pub errors: Vec<HostError>,
}

fn netlink(what: String) -> impl FnOnce(rtnetlink::Error) -> HostError {
    move |source| HostError::Netlink { what, source }
}

/// dock6's routes in the main table.
///
/// The request names the table, type and protocol: on a socket with strict
/// checking (see [`route_dump_connection`]) the kernel sends only dock6's
/// routes, not every route of the host: a container's veth brings three,
/// and dumping the 3,000 of a thousand containers took 3.7 ms of every pass
/// (0.04 ms beside ten). Without strict checking the kernel ignores them and
/// sends all; the same filter is applied here either way.
pub async fn list_dock6_routes(handle: &Handle) -> Result<Vec<Dock6Route>, HostError> {
    let mut dump = handle
        .route()
        .get(
            RouteMessageBuilder::<Ipv6Addr>::new()
                .table_id(u32::from(RT_TABLE_MAIN))
                .protocol(RouteProtocol::from(DOCK6_ROUTE_PROTOCOL))
                .kind(RouteType::Unicast)
                .build(),
        )
        .execute();
    let mut out = Vec::new();
    while let Some(msg) = dump
        .try_next()
        .await
        .map_err(netlink("dumping routes".into()))?
    {
        if msg.header.table != RT_TABLE_MAIN
            || u8::from(msg.header.protocol) != DOCK6_ROUTE_PROTOCOL
            || msg.header.destination_prefix_length != 128
        {
            continue;
        }
        let (mut address, mut ifindex) = (None, None);
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => address = Some(*a),
                RouteAttribute::Oif(i) => ifindex = Some(*i),
                _ => {}
            }
        }
        if let (Some(address), Some(ifindex)) = (address, ifindex) {
            out.push(Dock6Route { address, ifindex });
        }
    }
    out.sort();
    Ok(out)
}

/// A connection for route dumps that the kernel filters: rtnetlink with
/// `NETLINK_GET_STRICT_CHK` (Linux 4.20 and later), where a dump request's
/// table, type and protocol select the routes sent. `None` where the kernel
/// has no strict checking: dumps then go over the ordinary connection and
/// are filtered here. Kept apart from the connection that dumps neighbours
/// and links, whose requests strict checking would judge too.
pub fn route_dump_connection() -> Option<(
    rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>,
    Handle,
)> {
    match rtnetlink::new_connection_with_strict_check() {
        Ok((connection, handle, _)) => Some((connection, handle)),
        Err(e) => {
            info!("route dumps are filtered by dock6, not by the kernel: {e}");
            None
        }
    }
}

fn message(address: Ipv6Addr, ifindex: u32) -> RouteMessage {
    RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(address, 128)
        .output_interface(ifindex)
        .protocol(RouteProtocol::from(DOCK6_ROUTE_PROTOCOL))
        .kind(RouteType::Unicast)
        .build()
}

/// Makes dock6's tagged routes exactly `desired`: adds the missing ones,
/// deletes tagged routes no longer wanted. Fails only when the kernel cannot
/// be dumped; per-route failures are in the report.
pub async fn sync_host_routes(
    handle: &Handle,
    desired: &[HostRoute],
) -> Result<RouteSyncReport, HostError> {
    // Point lookups of the few interfaces involved (Docker's bridges), so a
    // pass's work does not grow with the host's links (a veth a container).
    let owned = link_indices(handle, desired.iter().map(|r| r.interface.as_str())).await?;
    let indices: HashMap<&str, u32> = owned.iter().map(|(n, i)| (n.as_str(), *i)).collect();
    let current: BTreeSet<Dock6Route> = list_dock6_routes(handle).await?.into_iter().collect();
    let mut report = RouteSyncReport::default();
    let mut wanted = BTreeSet::new();
    for route in desired {
        let Some(&ifindex) = indices.get(route.interface.as_str()) else {
            report.errors.push(HostError::NoSuchInterface {
                interface: route.interface.clone(),
                address: route.address,
            });
            continue;
        };
        let key = Dock6Route {
            address: route.address,
            ifindex,
        };
        if current.contains(&key) || !wanted.insert(key) {
            continue;
        }
        let added = handle
            .route()
            .add(message(route.address, ifindex))
            .execute()
            .await
            .map_err(netlink(format!(
                "adding route {}/128 dev {} (container {})",
                route.address, route.interface, route.container
            )));
        progress::beat();
        match added {
            Ok(()) => {
                info!(address = %route.address, interface = %route.interface, "host route added");
                report.added.push(route.clone());
            }
            Err(e) => report.errors.push(e),
        }
    }
    for route in current.iter().filter(|r| {
        !desired.iter().any(|d| {
            d.address == r.address && indices.get(d.interface.as_str()) == Some(&r.ifindex)
        })
    }) {
        match delete(handle, route).await {
            Ok(()) => report.removed.push(route.clone()),
            Err(e) => report.errors.push(e),
        }
    }
    Ok(report)
}

async fn delete(handle: &Handle, route: &Dock6Route) -> Result<(), HostError> {
    let deleted = handle
        .route()
        .del(message(route.address, route.ifindex))
        .execute()
        .await
        .map_err(netlink(format!(
            "deleting route {}/128 (ifindex {})",
            route.address, route.ifindex
        )));
    progress::beat();
    deleted?;
    info!(address = %route.address, "host route removed");
    Ok(())
}

/// Deletes every route carrying dock6's tag (cleanup) and returns them.
pub async fn remove_all_dock6_routes(handle: &Handle) -> Result<Vec<Dock6Route>, HostError> {
    let routes = list_dock6_routes(handle).await?;
    for route in &routes {
        delete(handle, route).await?;
    }
    Ok(routes)
}
