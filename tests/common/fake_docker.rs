//! A fake Docker Engine API on a unix socket, for testing how dock6 copes
//! with a Docker that misbehaves. Hand-written HTTP/1.1 on std threads: one
//! thread accepts, one thread per connection answers one request and closes
//! (`Connection: close`), so every answer is exactly what the script says.
//!
//! It serves what bollard asks for — `/_ping`, `/version` (API 1.41),
//! `/info`, `/networks`, `/networks/ID`, `/containers/json`,
//! `/containers/ID/json`, `/services` and `/events` (chunked, held open) —
//! from a [`Phase`] the test switches;
//! each switch ends the open event streams, as a restarting dockerd would, so
//! the client reconnects and meets the new phase at once. A test can also
//! send an event on the open streams ([`FakeDocker::send_event`]) and make
//! one container's inspect fail while everything else answers
//! ([`FakeDocker::fail_inspect`]).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The one network: a bridge with an IPv6 ULA subnet.
pub const NETWORK_ID: &str = "d0c6000000000000000000000000000000000000000000000000000000000001";
pub const NETWORK_NAME: &str = "v6net";
/// The bridge Docker would make for it: `br-` and the id's first 12 characters.
pub const BRIDGE: &str = "br-d0c600000000";
pub const SUBNET: &str = "fd00:1::/64";
pub const GATEWAY: &str = "fd00:1::1";

/// A lab (upstream and host namespaces) with the fake network's bridge in
/// the host, its gateway on it: where the fake Docker's containers live.
pub fn lab_with_bridge(tag: &str) -> super::lab::Lab {
    let lab = super::lab::Lab::new(tag);
    lab.bridge(BRIDGE, &format!("{GATEWAY}/64"), None, None);
    lab
}

/// A huge answer: far more than any real Docker answer dock6 asks for.
pub const HUGE_BYTES: usize = 48 << 20;

/// A running container on [`NETWORK_NAME`] publishing one TCP port on `::`.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub id: String,
    pub name: String,
    pub address: String,
    pub container_port: u16,
    pub host_port: u16,
}

impl Ctr {
    pub fn new(n: u8, host_port: u16) -> Ctr {
        Ctr {
            id: format!("{n:02x}").repeat(32),
            name: format!("web{n}"),
            // Past the gateway (::1).
            address: format!("fd00:1::{:x}", u16::from(n) + 0x10),
            container_port: 80,
            host_port,
        }
    }
}

/// What the fake Docker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Good answers: the network and the containers; events held open.
    Good,
    /// `/networks` answers 200 with a body that is not JSON.
    MalformedJson,
    /// `/containers/json` answers 500 with Docker's error shape.
    ServerError,
    /// `/containers/json` promises more bytes (Content-Length) than it sends, then closes.
    Truncated,
    /// Good answers, but every event stream sends half an object after a
    /// second and then closes without ending the chunked body.
    EventsCut,
    /// `/networks` answers [`HUGE_BYTES`] of valid JSON.
    Huge,
}

/// The one network's IPv6 subnet (with its length) and gateway.
#[derive(Debug, Clone)]
struct Ipv6Config {
    subnet: String,
    gateway: String,
}

impl Ipv6Config {
    fn prefix_len(&self) -> u8 {
        self.subnet
            .rsplit_once('/')
            .and_then(|(_, l)| l.parse().ok())
            .unwrap_or(64)
    }
}

/// The message of [`Phase::ServerError`]'s 500s.
pub const SERVER_ERROR_MESSAGE: &str = "fake dockerd: something broke";

struct State {
    phase: Phase,
    containers: Vec<Ctr>,
    /// The network's IPv6 subnet and gateway.
    ipv6: Ipv6Config,

    /// Bumped by each switch: open event streams end when it changes.
    generation: u64,
    /// Requests seen per endpoint (the path without version and query, ids as `ID`).
    hits: HashMap<String, usize>,
    /// What `/networks` lists instead of the one network, when set.
    networks: Option<Vec<Value>>,
    /// What `/info` answers, when set (else a bare 20.10 outside any swarm).
    info: Option<Value>,
    /// What `/services` answers (status and body), when set (else a 503 as
    /// from a node that is no swarm manager).
    services: Option<(u16, Value)>,
    /// Every event sent so far (JSON text); each open stream sends those
    /// that came after it opened.
    events: Vec<String>,
    /// Ids of the containers whose inspect answers a 500.
    failing_inspects: HashSet<String>,
}

pub struct FakeDocker {
    pub socket: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDocker {
    /// Listens on `dir/docker.sock`, answering good answers with `containers`.
    pub fn start(dir: &Path, containers: Vec<Ctr>) -> FakeDocker {
        FakeDocker::start_on(dir, SUBNET, GATEWAY, containers)
    }

    /// The same, with the network on IPv6 `subnet` (CIDR) and `gateway`.
    pub fn start_on(dir: &Path, subnet: &str, gateway: &str, containers: Vec<Ctr>) -> FakeDocker {
        let socket = dir.join("docker.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind the fake Docker socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State {
            phase: Phase::Good,
            containers,
            ipv6: Ipv6Config {
                subnet: subnet.to_string(),
                gateway: gateway.to_string(),
            },
            generation: 0,
            hits: HashMap::new(),
            networks: None,
            info: None,
            services: None,
            events: Vec::new(),
            failing_inspects: HashSet::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, flag) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s, flag) = (s.clone(), flag.clone());
                        std::thread::spawn(move || serve(stream, &s, &flag));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeDocker {
            socket,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `unix://…`, for `--docker-host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The containers answered from now on (in every phase, wherever the
    /// phase does not break the answer); event streams open now end.
    pub fn set_containers(&self, containers: Vec<Ctr>) {
        let mut state = self.state.lock().expect("state");
        state.containers = containers;
        state.generation += 1;
    }

    /// Switches what is answered; event streams open now end.
    pub fn set(&self, phase: Phase) {
        let mut state = self.state.lock().expect("state");
        state.phase = phase;
        state.generation += 1;
    }

    /// Requests seen so far for `endpoint` (e.g. `/networks`, `/events`).
    pub fn hits(&self, endpoint: &str) -> usize {
        let state = self.state.lock().expect("state");
        state.hits.get(endpoint).copied().unwrap_or(0)
    }

    /// `/networks` lists these (see [`network_json`]) from now on.
    pub fn set_networks(&self, networks: Vec<Value>) {
        self.state.lock().expect("state").networks = Some(networks);
    }

    /// `/info` answers `info` from now on (a recorded answer, or a part of one).
    pub fn set_info(&self, info: Value) {
        self.state.lock().expect("state").info = Some(info);
    }

    /// `/services` answers `status` with `body` from now on.
    pub fn set_services(&self, status: u16, body: Value) {
        self.state.lock().expect("state").services = Some((status, body));
    }

    /// Sends `event` (an event as Docker's `/events` streams it) on every
    /// event stream open now.
    pub fn send_event(&self, event: Value) {
        self.state
            .lock()
            .expect("state")
            .events
            .push(event.to_string());
    }

    /// From now on the inspect of container `id` answers a 500 (`true`),
    /// or its good answer again (`false`); `/_ping` and the rest still answer.
    pub fn fail_inspect(&self, id: &str, fail: bool) {
        let mut state = self.state.lock().expect("state");
        match fail {
            true => state.failing_inspects.insert(id.to_string()),
            false => state.failing_inspects.remove(id),
        };
    }

    /// Waits until `endpoint` has had `count` requests (or panics after `timeout`).
    pub fn wait_for_hits(&self, endpoint: &str, count: usize, timeout: Duration, log: &str) {
        let deadline = Instant::now() + timeout;
        while self.hits(endpoint) < count {
            assert!(
                Instant::now() < deadline,
                "{endpoint} had {} requests, not {count}, within {timeout:?}; dock6's log:\n{log}",
                self.hits(endpoint)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Reads one request and answers it; errors (the client went away) end the connection.
fn serve(stream: UnixStream, state: &Mutex<State>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
    }
    let mut body = vec![0; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let endpoint = endpoint(target);
    let (phase, containers, generation, ipv6, networks, events_sent, failing) = {
        let mut state = state.lock().expect("state");
        *state.hits.entry(endpoint.clone()).or_default() += 1;
        let networks = state.networks.clone();
        (
            state.phase,
            state.containers.clone(),
            state.generation,
            state.ipv6.clone(),
            networks,
            state.events.len(),
            state.failing_inspects.clone(),
        )
    };
    let (info, services) = {
        let state = state.lock().expect("state");
        (state.info.clone(), state.services.clone())
    };
    let mut out = stream;
    match (endpoint.as_str(), &phase) {
        ("/_ping", _) => respond(&mut out, 200, "text/plain", b"OK"),
        ("/version", _) => respond_json(&mut out, 200, &version()),
        ("/info", _) => respond_json(
            &mut out,
            200,
            &info.unwrap_or_else(|| json!({ "ServerVersion": "20.10.24" })),
        ),
        ("/services", _) => {
            let (status, body) = services.unwrap_or_else(|| {
                let message = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
                (503, json!({ "message": message }))
            });
            respond_json(&mut out, status, &body)
        }
        ("/events", Phase::EventsCut) => {
            events_head(&mut out);
            std::thread::sleep(Duration::from_secs(1));
            let half = br#"{"Type":"container","Action":"start","Actor":{"ID":"0101"#;
            let _ = write!(out, "{:x}\r\n", half.len());
            let _ = out.write_all(half);
            let _ = out.write_all(b"\r\n");
            let _ = out.flush();
            // Closed here without the last chunk: the object never ends.
        }
        ("/events", _) => {
            events_head(&mut out);
            let mut sent = events_sent;
            loop {
                let (now, new) = {
                    let state = state.lock().expect("state");
                    (state.generation, state.events[sent..].to_vec())
                };
                if now != generation || stop.load(Ordering::SeqCst) {
                    break;
                }
                for event in &new {
                    let line = format!("{event}\n");
                    let _ = write!(out, "{:x}\r\n{line}\r\n", line.len());
                    let _ = out.flush();
                }
                sent += new.len();
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = out.write_all(b"0\r\n\r\n");
        }
        ("/networks", Phase::MalformedJson) => respond(
            &mut out,
            200,
            "application/json",
            br#"[{"Name": "v6net", "Id": "d0c6", "IPAM": {"Config": [{"Subnet": "#,
        ),
        ("/networks", Phase::Huge) => huge_networks(&mut out, &ipv6),
        ("/containers/json", Phase::ServerError) => {
            respond_json(&mut out, 500, &json!({ "message": SERVER_ERROR_MESSAGE }))
        }
        ("/containers/json", Phase::Truncated) => {
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n"
            );
            let _ = out.write_all(br#"[{"Id": "0101010101010101", "Names": ["/web1"], "#);
            // Closed here, 4,950 bytes short.
        }
        ("/networks", _) => {
            let list = networks.unwrap_or_else(|| vec![network(&ipv6)]);
            respond_json(&mut out, 200, &Value::Array(list))
        }
        ("/networks/ID", _) => respond_json(&mut out, 200, &network(&ipv6)),
        ("/containers/json", _) => {
            let list: Vec<Value> = containers
                .iter()
                .map(|c| json!({ "Id": c.id, "Names": [format!("/{}", c.name)], "State": "running" }))
                .collect();
            respond_json(&mut out, 200, &Value::Array(list));
        }
        ("/containers/ID/json", _) => {
            let id = target
                .split('?')
                .next()
                .and_then(|p| p.rsplit('/').nth(1))
                .unwrap_or("");
            match containers.iter().find(|c| c.id == id) {
                Some(c) if failing.contains(id) => respond_json(
                    &mut out,
                    500,
                    &json!({ "message": format!("fake dockerd: cannot inspect {}", c.name) }),
                ),
                Some(c) => respond_json(&mut out, 200, &inspect(c, &ipv6)),
                None => respond_json(
                    &mut out,
                    404,
                    &json!({ "message": format!("No such container: {id}") }),
                ),
            }
        }
        _ => respond_json(
            &mut out,
            404,
            &json!({ "message": format!("page not found: {target}") }),
        ),
    }
    let _ = out.flush();
}

/// `/v1.41/containers/ABC/json?all=false` → `/containers/ID/json`.
fn endpoint(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("/");
    let path = match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => path,
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "containers", "json"] => "/containers/json".into(),
        ["", "containers", _, "json"] => "/containers/ID/json".into(),
        ["", "networks", _] => "/networks/ID".into(),
        _ => path.to_string(),
    }
}

fn respond(out: &mut UnixStream, status: u16, content_type: &str, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nApi-Version: 1.41\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(body);
}

fn respond_json(out: &mut UnixStream, status: u16, body: &Value) {
    respond(out, status, "application/json", body.to_string().as_bytes());
}

fn events_head(out: &mut UnixStream) {
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nApi-Version: 1.41\r\nConnection: close\r\n\r\n"
    );
    let _ = out.flush();
}

/// The network list, valid JSON, with one label value of [`HUGE_BYTES`].
fn huge_networks(out: &mut UnixStream, ipv6: &Ipv6Config) {
    let mut network = network(ipv6);
    network["Labels"] = json!({ "note": "HUGE" });
    let text = json!([network]).to_string();
    let (head, tail) = text.split_once("HUGE").expect("placeholder");
    let filler = HUGE_BYTES - head.len() - tail.len();
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {HUGE_BYTES}\r\nConnection: close\r\n\r\n"
    );
    let _ = out.write_all(head.as_bytes());
    let block = vec![b'x'; 1 << 20];
    let mut left = filler;
    while left > 0 {
        let n = left.min(block.len());
        if out.write_all(&block[..n]).is_err() {
            return; // The client gave up: what dock6 should do.
        }
        left -= n;
    }
    let _ = out.write_all(tail.as_bytes());
}

/// The event Docker streams when container `id` starts.
pub fn start_event(id: &str) -> Value {
    json!({
        "Type": "container",
        "Action": "start",
        "Actor": { "ID": id, "Attributes": {} },
        "scope": "local",
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_000_000_000i64
    })
}

/// The event Docker streams when container `id` is disconnected from the fake's network.
pub fn disconnect_event(id: &str) -> Value {
    json!({
        "Type": "network",
        "Action": "disconnect",
        "Actor": {
            "ID": NETWORK_ID,
            "Attributes": { "container": id, "name": NETWORK_NAME, "type": "bridge" }
        },
        "scope": "local",
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_000_000_000i64
    })
}

fn version() -> Value {
    json!({
        "Version": "20.10.24",
        "ApiVersion": "1.41",
        "MinAPIVersion": "1.12",
        "Os": "linux",
        "Arch": "amd64",
    })
}

/// The fake's own network, on the IPv6 subnet it was started with.
fn network(ipv6: &Ipv6Config) -> Value {
    network_with_gateways(
        NETWORK_ID,
        NETWORK_NAME,
        &[(ipv6.subnet.as_str(), Some(ipv6.gateway.as_str()))],
    )
}

/// A bridge network as Docker lists it, IPv6 enabled, with these subnets
/// (none: the IPv4 one only); the default subnet has its gateway.
pub fn network_json(id: &str, name: &str, ipv6_subnets: &[&str]) -> Value {
    let subnets: Vec<(&str, Option<&str>)> = ipv6_subnets
        .iter()
        .map(|s| (*s, (*s == SUBNET).then_some(GATEWAY)))
        .collect();
    network_with_gateways(id, name, &subnets)
}

fn network_with_gateways(id: &str, name: &str, ipv6: &[(&str, Option<&str>)]) -> Value {
    let mut config = vec![json!({ "Subnet": "203.0.113.64/28", "Gateway": "203.0.113.65" })];
    config.extend(ipv6.iter().map(|(subnet, gateway)| match gateway {
        Some(gateway) => json!({ "Subnet": subnet, "Gateway": gateway }),
        None => json!({ "Subnet": subnet }),
    }));
    json!({
        "Name": name,
        "Id": id,
        "Created": "2024-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": true,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": config
        },
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": {}
    })
}

fn inspect(c: &Ctr, ipv6: &Ipv6Config) -> Value {
    let port = format!("{}/tcp", c.container_port);
    json!({
        "Id": c.id,
        "Name": format!("/{}", c.name),
        "State": { "Status": "running", "Running": true, "Pid": 4242 },
        "Config": { "Labels": {} },
        "NetworkSettings": {
            "Ports": { port: [{ "HostIp": "::", "HostPort": c.host_port.to_string() }] },
            "Networks": {
                NETWORK_NAME: {
                    "NetworkID": NETWORK_ID,
                    "Gateway": "203.0.113.65",
                    "IPAddress": "203.0.113.66",
                    "IPPrefixLen": 28,
                    "IPv6Gateway": ipv6.gateway,
                    "GlobalIPv6Address": c.address,
                    "GlobalIPv6PrefixLen": ipv6.prefix_len()
                }
            }
        }
    })
}
