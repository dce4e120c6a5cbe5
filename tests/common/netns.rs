//! A namespace test harness: network namespaces with unique names, veth
//! pairs, bridges, and TCP/UDP peers that run inside a namespace (a thread
//! that `setns`es). Everything is removed on drop, even when a test fails.
//! Only documentation (2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24) and
//! ULA addresses are used; the host's own network is never touched.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Netns {
    pub name: String,
    /// Made by this handle, so deleted on drop.
    owned: bool,
}

impl Netns {
    /// `d6-TAG-PID-N`: unique per test process and call, so tests run side by side.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("d6-{tag}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name, owned: true };
        // No duplicate address detection: addresses are usable at once.
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        ns.ip("link set lo up");
        ns
    }

    /// A namespace made by someone else (a lab): used, never deleted.
    pub fn existing(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            owned: false,
        }
    }

    /// The link-local address of `device`, once it is there and not tentative.
    pub fn link_local(&self, device: &str) -> std::net::Ipv6Addr {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.exec_ok(&[
                "ip",
                "-6",
                "-o",
                "addr",
                "show",
                "dev",
                device,
                "scope",
                "link",
                "-tentative",
            ]);
            let found = out.split_whitespace().skip_while(|w| *w != "inet6").nth(1);
            if let Some(address) = found.and_then(|cidr| cidr.split('/').next()) {
                return address.parse().expect("a link-local address");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{device} in {} got no link-local address",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ip -n NS ARGS`, panicking with ip's message on failure.
    pub fn ip(&self, args: &str) {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args.split_whitespace());
        run_ok(&mut cmd);
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?} in {}: {e}", self.name))
    }

    /// Whether `table inet dock6` exists in this namespace.
    pub fn has_dock6_table(&self) -> bool {
        self.exec(&["nft", "list", "table", "inet", "dock6"])
            .status
            .success()
    }

    /// Runs a command inside the namespace and returns its stdout; panics on failure.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec_ok(&["sysctl", "-qw", &format!("{key}={value}")]);
    }

    pub fn read_sysctl(&self, key: &str) -> String {
        self.exec_ok(&["sysctl", "-n", key]).trim().to_string()
    }

    /// Runs `f` on a thread that has entered this namespace (it may borrow:
    /// the thread is joined before this returns).
    /// Moves the calling thread into this namespace (for a thread of the
    /// test's own that is to see two namespaces in turn).
    pub fn enter_here(&self) {
        enter(&self.path());
    }

    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter(&path);
                    f()
                })
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// A detached thread in this namespace (servers that outlive the call).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs an async block with an rtnetlink handle opened in this namespace
    /// (on a current-thread runtime in a thread that has entered it).
    pub fn netlink<T, Fut, F>(&self, f: F) -> T
    where
        T: Send,
        F: FnOnce(rtnetlink::Handle) -> Fut + Send,
        Fut: std::future::Future<Output = T>,
    {
        self.netlink_over(
            || {
                let (connection, handle, _) = rtnetlink::new_connection().expect("netlink socket");
                (connection, handle)
            },
            f,
        )
    }

    /// The same over a connection `connect` makes (in the namespace).
    pub fn netlink_over<T, Fut, F>(&self, connect: impl FnOnce() -> NetlinkPair + Send, f: F) -> T
    where
        T: Send,
        F: FnOnce(rtnetlink::Handle) -> Fut + Send,
        Fut: std::future::Future<Output = T>,
    {
        self.run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let (connection, handle) = connect();
                tokio::spawn(connection);
                f(handle).await
            })
        })
    }

    /// A TCP connection from inside this namespace; returns what the peer said.
    pub fn tcp(&self, to: SocketAddr) -> std::io::Result<String> {
        self.run(move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            Ok(reply.trim().to_string())
        })
    }

    /// An HTTP/1.0 GET from inside this namespace; returns the body.
    pub fn http_get(&self, to: SocketAddr, path: &str) -> std::io::Result<String> {
        let request = format!("GET {path} HTTP/1.0\r\nHost: dock6-test\r\n\r\n");
        self.run(move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(request.as_bytes())?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            // CGI output may end its headers with a bare "\n\n".
            let normalized = reply.replace("\r\n", "\n");
            match normalized.split_once("\n\n") {
                Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
                    Ok(body.trim().to_string())
                }
                _ => Err(std::io::Error::other(format!(
                    "unexpected HTTP answer: {reply:?}"
                ))),
            }
        })
    }

    /// Retries `http_get` until it answers or `timeout` passes.
    pub fn http_get_within(
        &self,
        to: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> std::io::Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.http_get(to, path) {
                Ok(body) => return Ok(body),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// A UDP request from inside this namespace; returns the reply.
    pub fn udp(&self, to: SocketAddr) -> std::io::Result<String> {
        self.run(move || {
            let bind: SocketAddr = if to.is_ipv6() {
                "[::]:0".parse().unwrap()
            } else {
                "0.0.0.0:0".parse().unwrap()
            };
            let s = UdpSocket::bind(bind)?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.send_to(b"who", to)?;
            let mut buf = [0u8; 256];
            let (n, _) = s.recv_from(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
        })
    }

    /// A TCP server on `[::]:port` (dual-stack) that answers every connection
    /// with the client's address, until dropped.
    pub fn tcp_echo_peer(&self, port: u16) -> Server {
        Server::start(self, port, Proto::Tcp)
    }

    /// The same over UDP.
    pub fn udp_echo_peer(&self, port: u16) -> Server {
        Server::start(self, port, Proto::Udp)
    }
}

/// Moves the calling thread into the namespace at `path`.
fn enter(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: the fd is a valid namespace file for the duration of the call;
    // setns only changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// An rtnetlink connection (to spawn) and its handle.
pub type NetlinkPair = (
    rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>,
    rtnetlink::Handle,
);

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // dock6's record that it turned forwarding on here (named by the
        // namespace's inode) goes with the namespace.
        if let Ok(meta) = std::fs::metadata(format!("/run/netns/{}", self.name)) {
            use std::os::unix::fs::MetadataExt as _;
            let _ = std::fs::remove_file(format!("/run/dock6/forwarding-netns-{}", meta.ino()));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Clone, Copy)]
enum Proto {
    Tcp,
    Udp,
}

/// A peer that replies with the address it sees the client come from.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &Netns, port: u16, proto: Proto) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = ns.spawn(move || {
            let addr: SocketAddr = format!("[::]:{port}").parse().unwrap();
            match proto {
                Proto::Tcp => {
                    let l = TcpListener::bind(addr).expect("bind tcp");
                    l.set_nonblocking(true).expect("nonblocking");
                    ready_tx.send(()).ok();
                    while !flag.load(Ordering::SeqCst) {
                        match l.accept() {
                            Ok((mut s, peer)) => {
                                let _ = writeln!(s, "{}", unmapped(peer));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                }
                Proto::Udp => {
                    let s = UdpSocket::bind(addr).expect("bind udp");
                    s.set_read_timeout(Some(Duration::from_millis(50)))
                        .expect("timeout");
                    ready_tx.send(()).ok();
                    let mut buf = [0u8; 256];
                    while !flag.load(Ordering::SeqCst) {
                        if let Ok((_, peer)) = s.recv_from(&mut buf) {
                            let _ = s.send_to(format!("{}\n", unmapped(peer)).as_bytes(), peer);
                        }
                    }
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server did not start");
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

/// `::ffff:198.51.100.1` → `198.51.100.1`, for IPv4 clients of a dual-stack socket.
fn unmapped(peer: SocketAddr) -> String {
    match peer {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.ip().to_string(),
        },
        SocketAddr::V4(v4) => v4.ip().to_string(),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
