//! Probes for the attack tests: packets counted where they arrive (an nft
//! counter in the receiving namespace), UDP from a source address of the
//! sender's choosing (python3), and ping. Everything runs inside a lab's or
//! a container's network namespace, entered with `nsenter`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A network namespace to run commands in: a named one (`/run/netns/NAME`)
/// or a container's (by the pid of its init process).
#[derive(Clone, Debug)]
pub enum Place {
    Netns(String),
    Pid(u32),
}

impl Place {
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        match self {
            Place::Netns(name) => cmd.arg(format!("--net=/run/netns/{name}")),
            Place::Pid(pid) => cmd.args(["-t", &pid.to_string(), "-n"]),
        };
        cmd.arg("--").arg(program);
        cmd
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} in {self:?}: {e}"))
    }

    /// Runs and returns stdout; panics with stderr on failure.
    pub fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} in {self:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Named nft counters on the input hook of one namespace (a table
/// `inet d6probe` of their own): what arrives there, whoever answers.
pub struct Arrivals {
    place: Place,
}

const PROBE_TABLE: &str = "d6probe";

impl Arrivals {
    pub fn new(place: Place) -> Arrivals {
        let script = format!(
            "table inet {PROBE_TABLE} {{\n chain input {{\n  type filter hook input priority -300; policy accept;\n }}\n}}\n"
        );
        let arrivals = Arrivals { place };
        arrivals.nft_script(&script);
        arrivals
    }

    fn nft_script(&self, script: &str) {
        use std::io::Write as _;
        let mut child = self
            .place
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn nft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write to nft");
        let out = child.wait_with_output().expect("wait for nft");
        assert!(
            out.status.success(),
            "nft -f in {:?}: {}\n{script}",
            self.place,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Counts packets matching `matches` (nft syntax, e.g. `ip6 saddr fd00:1::99 udp dport 53`) as `name`.
    pub fn count(&self, name: &str, matches: &str) {
        self.nft_script(&format!(
            "add counter inet {PROBE_TABLE} {name}\nadd rule inet {PROBE_TABLE} input {matches} counter name \"{name}\"\n"
        ));
    }

    pub fn packets(&self, name: &str) -> u64 {
        let text = self
            .place
            .run_ok("nft", &["list", "counter", "inet", PROBE_TABLE, name]);
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packet count in {text}"))
    }

    /// Waits until counter `name` has seen at least one packet; returns its count
    /// (0 if none arrived within `timeout`).
    pub fn wait_for(&self, name: &str, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.packets(name);
            if n > 0 || Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends `count` UDP datagrams from `place` to `[to]:port`, bound to `from`
/// when given (an address of that namespace: the source of the sender's
/// choosing). Binding retries while the address is still tentative (DAD).
pub fn send_udp(place: &Place, from: Option<&str>, to: &str, port: u16, count: u32) {
    const SENDER: &str = r#"
import socket, sys, time
src, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
if src:
    deadline = time.time() + 10
    while True:
        try:
            s.bind((src, 0))
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
for _ in range(count):
    s.sendto(b"dock6-probe", (dst, port))
"#;
    place.run_ok(
        "python3",
        &[
            "-c",
            SENDER,
            from.unwrap_or(""),
            to,
            &port.to_string(),
            &count.to_string(),
        ],
    );
}

/// Whether `to` answers an ICMPv6 echo from `place` (busybox ping, source `-I from`).
pub fn ping(place: &Place, from: &str, to: &str) -> bool {
    place
        .run(
            "busybox",
            &["ping", "-6", "-c", "2", "-W", "2", "-I", from, to],
        )
        .status
        .success()
}
