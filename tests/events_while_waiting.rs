//! An event is followed at once, also while a pass is already due later (a
//! retry after a failure, or the end of a host-facts grace period): the
//! loop never makes a change wait for a deadline it set for something else.
//! `dock6 run` against the fake Docker, in a lab namespace of its own.

mod common;

use std::time::{Duration, Instant};

use common::agent::Agent;
use common::fake_docker::{self, Ctr, FakeDocker};
use common::lab::Lab;

/// Generous: nothing here is timed, only waited for; far below the grace.
const WAIT: Duration = Duration::from_secs(30);

fn maps(lab: &Lab, port: u16) -> bool {
    let want = format!("tcp . {port} :");
    String::from_utf8_lossy(
        &lab.host
            .exec(&["nft", "list", "map", "inet", "dock6", "dnat_any"])
            .stdout,
    )
    .contains(&want)
}

#[test]
fn a_container_started_during_a_host_facts_grace_is_published_at_once() {
    const TEST: &str = "a_container_started_during_a_host_facts_grace_is_published_at_once";
    if !common::require_root(TEST) {
        return;
    }
    let lab = fake_docker::lab_with_bridge("evgrace");
    let web1 = Ctr::new(1, 8080);
    let fake = FakeDocker::start(lab.dir(), vec![web1.clone()]);
    let agent = Agent::start_in(
        &lab.host,
        &fake.host(),
        lab.dir(),
        "host_facts_grace = \"1h\"\n",
    );
    agent.wait_until("port 8080 mapped", WAIT, || maps(&lab, 8080));

    // The uplink loses its addresses: the last good facts stand in for an hour.
    lab.host.ip("-6 addr flush dev eth0 scope global");
    agent.wait_for_log("host_facts_grace", WAIT);

    let web2 = Ctr::new(2, 8081);
    fake.set_containers(vec![web1, web2.clone()]);
    let sent = Instant::now();
    fake.send_event(fake_docker::start_event(&web2.id));
    agent.wait_until(
        "port 8081 mapped while a grace period runs (not at its end)",
        WAIT,
        || maps(&lab, 8081),
    );
    eprintln!(
        "figure: container start event → its port mapped during a grace period: {:?}",
        sent.elapsed()
    );
    assert!(
        maps(&lab, 8080),
        "control: the earlier container keeps its port (the last good facts stand in)"
    );
}
