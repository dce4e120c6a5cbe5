//! The host's links, addresses and routes as last dumped, kept between
//! passes (see `source::host::LinkState`): a pass dumps them again only
//! when a notification may have changed them, or when they are older than
//! [`MAX_AGE`] (a notification lost to a full socket buffer is then made up
//! for within that time). Neighbours, dock6's proxy entries and sysctls are
//! read at every pass, as before.

use std::time::Duration;

use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tokio::time::Instant;

use crate::source::host::LinkState;

/// How long a dump is used at most.
pub const MAX_AGE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct LinkCache {
    last: Option<(LinkState, Instant)>,
}

impl LinkCache {
    /// Takes one rtnetlink notification; true when it may change the host
    /// facts (the next pass dumps again; a pass is due).
    pub fn notified(&mut self, message: &NetlinkMessage<RouteNetlinkMessage>) -> bool {
        let concerns = match (&message.payload, &self.last) {
            (NetlinkPayload::InnerMessage(m), Some((state, _))) => state.concerns(m),
            // Nothing dumped yet, or not a notification (an overrun: some
            // were lost): dump again.
            _ => true,
        };
        if concerns {
            self.last = None;
        }
        concerns
    }

    /// The last dump, unless it is older than [`MAX_AGE`] at `now`.
    pub fn fresh(&self, now: Instant) -> Option<&LinkState> {
        self.last
            .as_ref()
            .filter(|(_, at)| now.duration_since(*at) < MAX_AGE)
            .map(|(state, _)| state)
    }

    pub fn store(&mut self, state: LinkState, at: Instant) {
        self.last = Some((state, at));
    }

    /// The next pass dumps again (a resync, a reload).
    pub fn forget(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

    fn link(index: u32, name: &str) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.attributes.push(LinkAttribute::IfName(name.to_string()));
        NetlinkMessage::from(RouteNetlinkMessage::NewLink(l))
    }

    #[test]
    fn a_dump_serves_until_a_notification_concerns_it_or_it_is_old() {
        let mut cache = LinkCache::default();
        let t0 = Instant::now();
        assert!(
            cache.notified(&link(10, "veth0a1b2c3")),
            "nothing dumped yet"
        );
        cache.store(LinkState::default(), t0);
        assert!(cache.fresh(t0).is_some());
        assert!(
            !cache.notified(&link(10, "veth0a1b2c3")),
            "a container's veth"
        );
        assert!(cache.fresh(t0 + MAX_AGE / 2).is_some());
        assert!(cache.fresh(t0 + MAX_AGE).is_none(), "old");
        assert!(cache.notified(&link(11, "br-lan")), "the operator's bridge");
        assert!(cache.fresh(t0).is_none(), "dumped again");
        cache.store(LinkState::default(), t0);
        let overrun = NetlinkMessage::new(
            Default::default(),
            NetlinkPayload::<RouteNetlinkMessage>::Overrun(Vec::new()),
        );
        assert!(cache.notified(&overrun), "notifications were lost");
        assert!(cache.fresh(t0).is_none());
    }
}
