//! The agent keeps only what it needs: CAP_NET_ADMIN (nftables, sysctls,
//! neighbours, conntrack) and CAP_NET_RAW (neighbour advertisements, router
//! solicitations). Capabilities are per thread, so this runs before any
//! other thread exists.

use caps::{CapSet, Capability, CapsHashSet};

#[derive(Debug, thiserror::Error)]
#[error("dropping capabilities ({what}): {source}")]
pub struct PrivilegeError {
    what: &'static str,
    #[source]
    source: caps::errors::CapsError,
}

const KEEP: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW];

/// Drops every other capability from the bounding, inheritable, ambient,
/// effective and permitted sets. Returns false when the process has none of
/// the two to keep (not root): then there is nothing to drop.
pub fn drop_to_network_admin() -> Result<bool, PrivilegeError> {
    let err = |what| move |source| PrivilegeError { what, source };
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(err("reading the permitted set"))?;
    if !KEEP.iter().any(|c| permitted.contains(c)) {
        return Ok(false);
    }
    let keep: CapsHashSet = KEEP
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    for cap in caps::all().difference(&keep) {
        // Dropping from the bounding set needs CAP_SETPCAP, still held here.
        if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(err("bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(err("ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(err("inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(err("effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err("permitted set"))?;
    Ok(true)
}
