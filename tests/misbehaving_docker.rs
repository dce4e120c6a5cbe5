//! `dock6 run` against a Docker that misbehaves: a fake Engine API on a unix
//! socket (`tests/common/fake_docker.rs`) answering with malformed JSON,
//! HTTP 500s, huge and truncated bodies, and an event stream that stops in
//! the middle of an object. For each: dock6 keeps running, the kernel keeps
//! the table it has (nothing is planned from a failed snapshot), the problem
//! is logged once however often dock6 retries, and dock6 comes back when
//! Docker answers well again. The agent runs in a lab namespace of its own.

mod common;

use std::time::{Duration, Instant};

use common::agent::Agent;
use common::fake_docker::{self, Ctr, FakeDocker, Phase};
use common::lab::Lab;

/// Generous: nothing here is timed, only waited for.
const WAIT: Duration = Duration::from_secs(60);

/// What dock6 logs when Docker answers well again after failures.
const BACK: &str = "Docker answers again";

fn table(lab: &Lab) -> String {
    lab.host.exec_ok(&["nft", "list", "table", "inet", "dock6"])
}

fn dnat_any(lab: &Lab) -> String {
    lab.host
        .exec_ok(&["nft", "list", "map", "inet", "dock6", "dnat_any"])
}

/// Waits until `dnat_any` maps host port `port` (or panics, showing the log).
fn wait_for_port(lab: &Lab, agent: &Agent, port: u16) {
    let deadline = Instant::now() + WAIT;
    let want = format!("tcp . {port} :");
    while !lab
        .host
        .exec(&["nft", "list", "map", "inet", "dock6", "dnat_any"])
        .stdout
        .windows(want.len())
        .any(|w| w == want.as_bytes())
    {
        assert!(
            Instant::now() < deadline,
            "dnat_any never mapped {port}; dock6's log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of `log` holding `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

struct Misbehaviour {
    phase: Phase,
    /// The endpoint that misbehaves (its requests prove dock6 retried).
    endpoint: &'static str,
    /// What dock6's log line about it must hold.
    needle: &'static str,
}

#[test]
fn a_misbehaving_docker_is_survived_logged_once_and_recovered_from() {
    const TEST: &str = "misbehaving_docker";
    if !common::require_root(TEST) {
        return;
    }
    let lab = fake_docker::lab_with_bridge("mdock");
    let web1 = Ctr::new(1, 8080);
    let fake = FakeDocker::start(lab.dir(), vec![web1.clone()]);
    let mut agent = Agent::start_in(&lab.host, &fake.host(), lab.dir(), "");

    // Good answers first: the published port is programmed.
    wait_for_port(&lab, &agent, 8080);
    let programmed = table(&lab);
    eprintln!("programmed:\n{}", dnat_any(&lab));

    let misbehaviours = [
        Misbehaviour {
            phase: Phase::MalformedJson,
            endpoint: "/networks",
            needle: "listing networks",
        },
        Misbehaviour {
            phase: Phase::ServerError,
            endpoint: "/containers/json",
            needle: fake_docker::SERVER_ERROR_MESSAGE,
        },
        Misbehaviour {
            phase: Phase::Huge,
            endpoint: "/networks",
            needle: "listing networks",
        },
        Misbehaviour {
            phase: Phase::Truncated,
            endpoint: "/containers/json",
            needle: "listing running containers",
        },
        Misbehaviour {
            phase: Phase::EventsCut,
            endpoint: "/events",
            needle: "reading Docker events",
        },
    ];
    for m in &misbehaviours {
        let what = format!("{:?}", m.phase);
        let mark = agent.mark();
        let before = fake.hits(m.endpoint);
        fake.set(m.phase);
        agent.wait_for_log_since(mark, m.needle, WAIT);
        // Three more attempts after the first: the problem has repeated.
        fake.wait_for_hits(m.endpoint, before + 4, WAIT, &agent.log());
        std::thread::sleep(Duration::from_millis(500));

        assert!(agent.is_running(), "{what}: dock6 exited:\n{}", agent.log());
        assert_eq!(
            table(&lab),
            programmed,
            "{what}: the table in the kernel changed; dock6's log:\n{}",
            agent.log()
        );
        let log = agent.log();
        let new = &log[mark..];
        let mentions = lines_with(new, m.needle);
        assert_eq!(
            mentions.len(),
            1,
            "{what}: {} requests to {}, and the log should mention {:?} once, not per retry:\n{new}",
            fake.hits(m.endpoint) - before,
            m.endpoint,
            m.needle
        );
        for line in new.lines() {
            assert!(
                line.len() < 1000,
                "{what}: a log line of {} bytes: {}…",
                line.len(),
                line.chars().take(200).collect::<String>()
            );
        }
        eprintln!(
            "{what}: {} requests to {}; logged:\n{new}",
            fake.hits(m.endpoint) - before,
            m.endpoint
        );

        // Good answers again: dock6 is back, with nothing to change.
        let mark = agent.mark();
        fake.set(Phase::Good);
        agent.wait_for_log_since(mark, BACK, WAIT);
        assert_eq!(table(&lab), programmed, "{what}: after recovery");
    }

    // A second container, published: dock6 converges to it.
    let web2 = Ctr::new(2, 8081);
    fake.set_containers(vec![web1, web2]);
    wait_for_port(&lab, &agent, 8081);
    let map = dnat_any(&lab);
    assert!(map.contains("tcp . 8080 :"), "web1 kept:\n{map}");
    assert!(agent.is_running());
    assert!(agent.stop(), "dock6 stops cleanly:\n{}", agent.log());
}

/// Whether `dnat_any` maps host port `port`.
fn maps_port(lab: &Lab, port: u16) -> bool {
    dnat_any(lab).contains(&format!("tcp . {port} :"))
}

/// Waits until `done`, or panics with `what` and dock6's log.
fn wait_until(agent: &Agent, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}; dock6's log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A container's inspect fails after an event while Docker answers
/// everything else: what dock6 knew of it (its address, published port,
/// DNAT) may be stale (a `disconnect` frees the address for another
/// container), so its port is closed at once and a full snapshot is taken
/// at once, not at the next resync. The other container keeps its port; once
/// the container answers again, the next snapshot opens its port again.
#[test]
fn a_container_whose_inspect_fails_after_an_event_is_closed_and_resynced_at_once() {
    const TEST: &str =
        "a_container_whose_inspect_fails_after_an_event_is_closed_and_resynced_at_once";
    if !common::require_root(TEST) {
        return;
    }
    let lab = fake_docker::lab_with_bridge("mdinsp");
    let (web1, web2) = (Ctr::new(1, 8080), Ctr::new(2, 8081));
    let fake = FakeDocker::start(lab.dir(), vec![web1.clone(), web2.clone()]);
    let mut agent = Agent::start_in(&lab.host, &fake.host(), lab.dir(), "");
    wait_for_port(&lab, &agent, 8080);
    wait_for_port(&lab, &agent, 8081);
    fake.wait_for_hits("/events", 1, WAIT, &agent.log());
    let snapshots = fake.hits("/containers/json");

    fake.fail_inspect(&web1.id, true);
    fake.send_event(fake_docker::disconnect_event(&web1.id));
    fake.wait_for_hits("/containers/ID/json", 3, WAIT, &agent.log());
    wait_until(
        &agent,
        "web1's port 8080 stayed mapped after its inspect failed",
        || !maps_port(&lab, 8080),
    );
    assert!(
        maps_port(&lab, 8081),
        "control: web2's port 8081 is still mapped:\n{}",
        dnat_any(&lab)
    );
    // The resync interval is five minutes: a snapshot now is the one asked for.
    wait_until(&agent, "no full snapshot after the failed inspect", || {
        fake.hits("/containers/json") > snapshots
    });
    assert!(agent.is_running(), "dock6 exited:\n{}", agent.log());

    // Docker answers for web1 again: the next snapshot maps its port again.
    fake.fail_inspect(&web1.id, false);
    agent.reload();
    wait_for_port(&lab, &agent, 8080);
    assert!(maps_port(&lab, 8081), "web2 kept:\n{}", dnat_any(&lab));
    assert!(agent.stop(), "dock6 stops cleanly:\n{}", agent.log());
}

/// Docker away for a while (nothing listens on its socket), then back:
/// dock6 takes a snapshot at once, not after a retry delay that grew while
/// Docker was away (which would leave containers started meanwhile closed
/// for up to that long).
#[test]
fn docker_back_after_a_long_absence_is_followed_at_once() {
    const TEST: &str = "docker_back_after_a_long_absence_is_followed_at_once";
    if !common::require_root(TEST) {
        return;
    }
    /// Longer than the first five retry delays of a backoff (250 ms doubling) together.
    const AWAY: Duration = Duration::from_secs(16);
    /// Generous next to the quarter second dock6 waits between attempts.
    const BACK_WITHIN: Duration = Duration::from_secs(3);
    let lab = fake_docker::lab_with_bridge("mdback");
    let web1 = Ctr::new(1, 8080);
    let fake = FakeDocker::start(lab.dir(), vec![web1.clone()]);
    let host = fake.host();
    let mut agent = Agent::start_in(&lab.host, &host, lab.dir(), "");
    wait_for_port(&lab, &agent, 8080);
    let mark = agent.mark();
    drop(fake);
    agent.wait_for_log_since(mark, "reconnecting to Docker", WAIT);
    std::thread::sleep(AWAY);

    let web2 = Ctr::new(2, 8081);
    let fake = FakeDocker::start(lab.dir(), vec![web1, web2]);
    let back = Instant::now();
    fake.wait_for_hits("/containers/json", 1, WAIT, &agent.log());
    let took = back.elapsed();
    wait_for_port(&lab, &agent, 8081);
    eprintln!("figure: snapshot {took:?} after Docker was back");
    assert!(
        took <= BACK_WITHIN,
        "Docker was back for {took:?} before dock6 took a snapshot, not within \
         {BACK_WITHIN:?}; dock6's log:\n{}",
        agent.log()
    );
    assert!(agent.stop(), "dock6 stops cleanly:\n{}", agent.log());
}
