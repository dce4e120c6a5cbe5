//! Host facts that vanish for a moment (the IPv6 default route during a
//! router's restart, the uplink going down and up) must not make dock6 tear
//! down NAT66 and published ports at once: for a grace period
//! (`host_facts_grace`) the last good facts stand in for what vanished;
//! after it, dock6 plans without them. Pure: the caller logs the events.

use std::time::Duration;

use tokio::time::Instant;

use crate::snapshot::HostFacts;

/// What changed in the grace state, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraceEvent {
    /// `what` vanished: the last good facts stand in for it until `grace` is over.
    Started { what: String, grace: Duration },
    /// It came back within the grace period.
    Recovered { after: Duration },
    /// The grace period is over: planning without it.
    Expired { what: String, after: Duration },
}

#[derive(Debug, Default)]
pub struct HostGrace {
    last_good: Option<HostFacts>,
    degraded_since: Option<Instant>,
}

impl HostGrace {
    /// The facts to plan with, given the `fresh` ones read at `now`.
    /// `uplink` is the configured uplink, if any.
    pub fn facts(
        &mut self,
        fresh: HostFacts,
        uplink: Option<&str>,
        grace: Duration,
        now: Instant,
    ) -> (HostFacts, Option<GraceEvent>) {
        let Some(last) = &self.last_good else {
            self.last_good = Some(fresh.clone());
            return (fresh, None);
        };
        let Some(what) = vanished(last, &fresh, uplink) else {
            let event = self
                .degraded_since
                .take()
                .map(|since| GraceEvent::Recovered {
                    after: now.saturating_duration_since(since),
                });
            self.last_good = Some(fresh.clone());
            return (fresh, event);
        };
        let started = self.degraded_since.is_none();
        let since = *self.degraded_since.get_or_insert(now);
        let after = now.saturating_duration_since(since);
        if after < grace {
            let event = started.then_some(GraceEvent::Started { what, grace });
            return (stand_in(last, fresh, uplink), event);
        }
        self.degraded_since = None;
        self.last_good = Some(fresh.clone());
        (fresh, Some(GraceEvent::Expired { what, after }))
    }

    /// When the running grace period ends (a pass is due then).
    pub fn deadline(&self, grace: Duration) -> Option<Instant> {
        self.degraded_since.map(|since| since + grace)
    }
}

/// The uplink: the configured one, else the default route's.
fn uplink_of<'a>(facts: &'a HostFacts, configured: Option<&'a str>) -> Option<&'a str> {
    configured.or(facts.default_route_interface.as_deref())
}

/// What the last good facts had that the fresh ones lack, if anything.
fn vanished(last: &HostFacts, fresh: &HostFacts, uplink: Option<&str>) -> Option<String> {
    if last.default_route_interface.is_some() && fresh.default_route_interface.is_none() {
        return Some("the IPv6 default route".into());
    }
    let name = uplink_of(last, uplink)?;
    // The default route now leaves by another interface: the uplink moved
    // (a failover, a renamed link), and the new one is followed at once.
    if uplink.is_none()
        && fresh
            .default_route_interface
            .as_deref()
            .is_some_and(|now| now != name)
    {
        return None;
    }
    let had = last.interface(name)?;
    match fresh.interface(name) {
        None => Some(format!("the uplink {name}")),
        Some(now) if !had.addresses.is_empty() && now.addresses.is_empty() => {
            Some(format!("the addresses of the uplink {name} (down?)"))
        }
        Some(_) => None,
    }
}

/// The fresh facts with the last good default route and uplink put back
/// (everything else, such as new bridges, stays fresh).
fn stand_in(last: &HostFacts, mut fresh: HostFacts, uplink: Option<&str>) -> HostFacts {
    if fresh.default_route_interface.is_none() {
        fresh.default_route_interface = last.default_route_interface.clone();
        fresh.default_routers = last.default_routers.clone();
    }
    if let Some(good) = uplink_of(last, uplink).and_then(|name| last.interface(name)) {
        fresh.interfaces.retain(|i| i.name != good.name);
        fresh.interfaces.push(good.clone());
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Interface;

    fn facts(route: bool, uplink_addresses: &[&str]) -> HostFacts {
        HostFacts {
            default_route_interface: route.then(|| "eth0".into()),
            interfaces: vec![Interface {
                name: "eth0".into(),
                addresses: uplink_addresses
                    .iter()
                    .map(|a| a.parse().unwrap())
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn a_route_gone_for_a_moment_keeps_the_last_good_facts() {
        let (good, t0) = (facts(true, &["2001:db8:1::2/64"]), Instant::now());
        let mut g = HostGrace::default();
        assert_eq!(g.facts(good.clone(), None, GRACE, t0), (good.clone(), None));
        let (used, event) = g.facts(facts(false, &["2001:db8:1::2/64"]), None, GRACE, t0);
        assert_eq!(used, good);
        assert_eq!(
            event,
            Some(GraceEvent::Started {
                what: "the IPv6 default route".into(),
                grace: GRACE
            })
        );
        assert_eq!(g.deadline(GRACE), Some(t0 + GRACE));
        let t1 = t0 + Duration::from_secs(5);
        let (used, event) = g.facts(facts(false, &["2001:db8:1::2/64"]), None, GRACE, t1);
        assert_eq!((used, event), (good.clone(), None));
        let t2 = t0 + Duration::from_secs(6);
        let (used, event) = g.facts(good.clone(), None, GRACE, t2);
        assert_eq!(used, good);
        assert_eq!(event, Some(GraceEvent::Recovered { after: t2 - t0 }));
        assert_eq!(g.deadline(GRACE), None);
    }

    #[test]
    fn after_the_grace_period_dock6_plans_without_them() {
        let t0 = Instant::now();
        let mut g = HostGrace::default();
        g.facts(facts(true, &["2001:db8:1::2/64"]), None, GRACE, t0);
        let down = facts(false, &[]);
        let (used, _) = g.facts(down.clone(), None, GRACE, t0);
        assert_eq!(used.default_route_interface.as_deref(), Some("eth0"));
        assert_eq!(used.interfaces[0].addresses.len(), 1, "{used:?}");
        let (used, event) = g.facts(down.clone(), None, GRACE, t0 + GRACE);
        assert_eq!(used, down);
        assert!(
            matches!(event, Some(GraceEvent::Expired { .. })),
            "{event:?}"
        );
        // From then on the new facts are the good ones: no new grace.
        assert_eq!(
            g.facts(down.clone(), None, GRACE, t0 + GRACE * 2),
            (down, None)
        );
    }

    #[test]
    fn a_configured_uplink_that_goes_down_or_away_is_kept_for_a_while() {
        let t0 = Instant::now();
        let mut g = HostGrace::default();
        let good = facts(false, &["2001:db8:1::2/64"]);
        g.facts(good.clone(), Some("eth0"), GRACE, t0);
        let (used, event) = g.facts(facts(false, &[]), Some("eth0"), GRACE, t0);
        assert_eq!(used, good);
        assert!(
            matches!(&event, Some(GraceEvent::Started { what, .. }) if what.contains("addresses of the uplink eth0")),
            "{event:?}"
        );
        let gone = HostFacts::default();
        let mut g = HostGrace::default();
        g.facts(good.clone(), Some("eth0"), GRACE, t0);
        let (used, event) = g.facts(gone, Some("eth0"), GRACE, t0);
        assert_eq!(used, good);
        assert!(
            matches!(&event, Some(GraceEvent::Started { what, .. }) if what == "the uplink eth0"),
            "{event:?}"
        );
    }

    #[test]
    fn an_uplink_that_moves_to_another_interface_is_followed_at_once() {
        let t0 = Instant::now();
        let mut g = HostGrace::default();
        g.facts(facts(true, &["2001:db8:1::2/64"]), None, GRACE, t0);
        // Its addresses leave eth0 first: the grace period starts.
        let (_, event) = g.facts(facts(true, &[]), None, GRACE, t0);
        assert!(
            matches!(event, Some(GraceEvent::Started { .. })),
            "{event:?}"
        );
        // Then the default route and the addresses are on eth1.
        let mut moved = facts(false, &[]);
        moved.default_route_interface = Some("eth1".into());
        moved.interfaces.push(Interface {
            name: "eth1".into(),
            addresses: vec!["2001:db8:1::2/64".parse().unwrap()],
            ..Default::default()
        });
        let t1 = t0 + Duration::from_secs(1);
        let (used, event) = g.facts(moved.clone(), None, GRACE, t1);
        assert_eq!(
            used, moved,
            "the new uplink is planned with, not the old one"
        );
        assert_eq!(event, Some(GraceEvent::Recovered { after: t1 - t0 }));
        assert_eq!(g.deadline(GRACE), None);
    }

    #[test]
    fn a_zero_grace_plans_without_them_at_once() {
        let t0 = Instant::now();
        let mut g = HostGrace::default();
        g.facts(facts(true, &["2001:db8:1::2/64"]), None, Duration::ZERO, t0);
        let (used, event) = g.facts(facts(false, &[]), None, Duration::ZERO, t0);
        assert_eq!(used, facts(false, &[]));
        assert!(matches!(event, Some(GraceEvent::Expired { .. })));
    }
}
