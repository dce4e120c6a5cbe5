//! Prometheus metrics (`dock6 run --metrics ADDR`, config `metrics_address`):
//! `http://ADDR/metrics` in the text format, from `prometheus-client`.
//! The loop records into them where it records what `dock6 status` shows
//! (see `status::Shown`); serving never waits for a pass.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

use super::prefixes::{Mapping, MappingChange, Mappings};

/// A scraper that holds a connection longer than this is dropped.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed as soon as they are accepted.
const MAX_CONNECTIONS: usize = 16;
/// A connection that has not sent a request's headers this long after it
/// opened (or after its last answer) is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabel {
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct NetworkLabel {
    pub network: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MappingLabel {
    pub network: String,
    /// The mapped prefix, `none` while the network waits for one.
    pub prefix: String,
}

pub(super) struct Metrics {
    registry: Registry,
    pub passes: Family<ResultLabel, Counter>,
    pub pass_duration: Histogram,
    pub transactions: Counter,
    pub element_changes: Counter,
    pub errors: Family<KindLabel, Counter>,
    pub tamper_restores: Counter,
    pub docker_reconnects: Counter,
    pub docker_up: Gauge,
    pub containers: Gauge,
    pub published_ports: Gauge,
    pub proxy_entries: Gauge,
    pub nptv6_mapped: Family<MappingLabel, Gauge>,
    pub nptv6_changed: Family<NetworkLabel, Gauge>,
    pub nptv6_changes: Family<NetworkLabel, Counter>,
    /// The `nptv6_mapped` series set by the last [`Metrics::mappings`]:
    /// those no longer current are removed one by one, so a scrape never
    /// sees the family empty while it is refilled.
    mapped_shown: Mutex<Vec<MappingLabel>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            passes: Family::default(),
            // 1 ms to about 16 s.
            pass_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            transactions: Counter::default(),
            element_changes: Counter::default(),
            errors: Family::default(),
            tamper_restores: Counter::default(),
            docker_reconnects: Counter::default(),
            docker_up: Gauge::default(),
            containers: Gauge::default(),
            published_ports: Gauge::default(),
            proxy_entries: Gauge::default(),
            nptv6_mapped: Family::default(),
            nptv6_changed: Family::default(),
            nptv6_changes: Family::default(),
            mapped_shown: Mutex::default(),
        };
        let r = &mut m.registry;
        r.register(
            "dock6_passes",
            "Reconcile passes, by result (converged, failed, waiting_for_docker)",
            m.passes.clone(),
        );
        r.register(
            "dock6_pass_duration_seconds",
            "How long a reconcile pass took",
            m.pass_duration.clone(),
        );
        r.register(
            "dock6_kernel_transactions",
            "nftables transactions on table inet dock6 (replaces and element batches)",
            m.transactions.clone(),
        );
        r.register(
            "dock6_element_changes",
            "Set and map elements added or removed",
            m.element_changes.clone(),
        );
        r.register(
            "dock6_errors",
            "Errors, by kind (table, sysctl, proxy_ndp, host_route, conntrack, host_facts, kernel, docker)",
            m.errors.clone(),
        );
        r.register(
            "dock6_tamper_restores",
            "Whole-table restores after a commit dock6 did not make (nft flush ruleset)",
            m.tamper_restores.clone(),
        );
        r.register(
            "dock6_docker_reconnects",
            "Connections to Docker that came back after it was lost",
            m.docker_reconnects.clone(),
        );
        r.register(
            "dock6_docker_up",
            "1 while Docker answers, else 0",
            m.docker_up.clone(),
        );
        r.register(
            "dock6_containers",
            "Running containers in Docker's view",
            m.containers.clone(),
        );
        r.register(
            "dock6_published_ports",
            "Published IPv6 port mappings (DNAT map elements)",
            m.published_ports.clone(),
        );
        r.register(
            "dock6_proxy_entries",
            "Proxy-NDP entries planned",
            m.proxy_entries.clone(),
        );
        r.register(
            "dock6_nptv6_mapped",
            "1 for each nptv6 network's current mapped prefix (prefix \"none\" while it waits for one)",
            m.nptv6_mapped.clone(),
        );
        r.register(
            "dock6_nptv6_mapping_changed_timestamp_seconds",
            "When each nptv6 network's mapping took its current prefix, or was first planned (Unix time)",
            m.nptv6_changed.clone(),
        );
        r.register(
            "dock6_nptv6_mapping_changes",
            "How many times each nptv6 network's mapping moved to another prefix (a renumbering)",
            m.nptv6_changes.clone(),
        );
        r.register(
            "dock6_build",
            "dock6's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        m
    }

    pub fn error(&self, kind: &str) {
        self.errors
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Every `nptv6` network's current mapping: the series of networks and
    /// prefixes gone since the last call go too.
    pub fn mappings(&self, mappings: &Mappings) {
        let current: Vec<MappingLabel> = mappings
            .iter()
            .map(|(network, m)| MappingLabel {
                network: network.into(),
                prefix: prefix_label(m.prefix),
            })
            .collect();
        let mut shown = self
            .mapped_shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in shown.iter().filter(|l| !current.contains(l)) {
            self.nptv6_mapped.remove(gone);
            if !current.iter().any(|l| l.network == gone.network) {
                self.nptv6_changed.remove(&NetworkLabel {
                    network: gone.network.clone(),
                });
            }
        }
        for (network, m) in mappings.iter() {
            self.mapping(network, m);
        }
        *shown = current;
    }

    /// An `nptv6` network's current mapping.
    fn mapping(&self, network: &str, mapping: &Mapping) {
        let label = MappingLabel {
            network: network.into(),
            prefix: prefix_label(mapping.prefix),
        };
        self.nptv6_mapped.get_or_create(&label).set(1);
        let since = mapping
            .since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.nptv6_changed
            .get_or_create(&NetworkLabel {
                network: network.into(),
            })
            .set(since);
    }

    /// A mapping moved: counted.
    pub fn mapping_moved(&self, change: &MappingChange) {
        self.nptv6_changes
            .get_or_create(&NetworkLabel {
                network: change.network.clone(),
            })
            .inc();
    }

    pub fn pass(&self, result: &str, took: Duration) {
        self.passes
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
        self.pass_duration.observe(took.as_secs_f64());
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn prefix_label(prefix: Option<ipnet::Ipv6Net>) -> String {
    prefix.map_or("none".to_string(), |p| p.to_string())
}

#[derive(Debug, thiserror::Error)]
#[error("metrics: cannot listen on {address}: {source}")]
pub struct MetricsError {
    address: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Listens on `address` and serves `/metrics` from a task.
pub(super) async fn serve(address: SocketAddr, metrics: Arc<Metrics>) -> Result<(), MetricsError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError { address, source })?;
    info!("metrics served on http://{address}/metrics");
    tokio::spawn(accept(listener, metrics));
    Ok(())
}

async fn accept(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut refused = Refused::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                debug!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Past the limit the connection is dropped here, closing it: held
        // connections cannot make dock6 run out of file descriptors.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.count();
            continue;
        };
        tokio::spawn(serve_connection(stream, metrics.clone(), slot));
    }
}

/// One connection, cut when it sends no headers for `HEADER_TIMEOUT` or
/// lasts `CONNECTION_TIMEOUT`; its slot is free again when it ends.
async fn serve_connection(stream: TcpStream, metrics: Arc<Metrics>, _slot: OwnedSemaphorePermit) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let response = respond(&metrics, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    // A timeout just drops the connection.
    if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        debug!("metrics: connection: {e}");
    }
}

/// Connections closed for want of a slot, logged at most once a minute.
#[derive(Default)]
struct Refused {
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl Refused {
    const LOG_EVERY: Duration = Duration::from_secs(60);

    fn count(&mut self) {
        self.since_logged += 1;
        if self
            .logged_at
            .is_some_and(|at| at.elapsed() < Self::LOG_EVERY)
        {
            return;
        }
        warn!(
            "metrics: {} connection(s) closed unanswered: {MAX_CONNECTIONS} already open",
            self.since_logged
        );
        self.since_logged = 0;
        self.logged_at = Some(Instant::now());
    }
}

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "dock6 serves /metrics only\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A server on a loopback port of its own; its address.
    async fn serving() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("the bound address");
        tokio::spawn(accept(listener, Arc::new(Metrics::new())));
        address
    }

    /// A connection that sends nothing, or (`partial`) a request line and
    /// never the end of its headers.
    async fn held(address: SocketAddr, partial: bool) -> TcpStream {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        if partial {
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await
                .expect("send a partial request");
        }
        stream
    }

    /// What reading `stream` to its end brings before `deadline`: `Some`
    /// once the server closed it (an answer, or "" for none; a reset counts
    /// as closed), `None` while it is still open.
    async fn until_closed(
        stream: &mut TcpStream,
        deadline: tokio::time::Instant,
    ) -> Option<String> {
        let mut answer = Vec::new();
        match tokio::time::timeout_at(deadline, stream.read_to_end(&mut answer)).await {
            Err(_) => None,
            Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        }
    }

    /// `GET /metrics` on a new connection; what came back before it closed.
    async fn scrape(address: SocketAddr) -> Option<String> {
        let mut stream = TcpStream::connect(address).await.ok()?;
        let request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        // A refused connection may be gone before the request is written.
        let _ = stream.write_all(request).await;
        until_closed(
            &mut stream,
            tokio::time::Instant::now() + 2 * HEADER_TIMEOUT,
        )
        .await
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_closed_unanswered() {
        let address = serving().await;
        let mut holding = Vec::new();
        for i in 0..MAX_CONNECTIONS {
            holding.push(held(address, i % 2 == 0).await);
        }
        let past = scrape(address).await;
        assert_eq!(
            past.as_deref(),
            Some(""),
            "a connection past the {MAX_CONNECTIONS} held ones is closed without an answer"
        );
        // The control: once the holders leave, a scrape is answered.
        drop(holding);
        let deadline = tokio::time::Instant::now() + 2 * HEADER_TIMEOUT;
        loop {
            let answer = scrape(address).await.unwrap_or_default();
            if answer.contains("dock6_build_info") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no metrics after the holders left: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn connections_without_headers_are_cut_and_scrapes_answer_after() {
        let address = serving().await;
        let opened = tokio::time::Instant::now();
        let mut holding = Vec::new();
        for i in 0..MAX_CONNECTIONS + 4 {
            holding.push(held(address, i % 2 == 0).await);
        }
        // Well before the per-connection limit, which would cut them too.
        const { assert!(2 * HEADER_TIMEOUT.as_secs() < CONNECTION_TIMEOUT.as_secs()) };
        let deadline = opened + 2 * HEADER_TIMEOUT;
        for (i, stream) in holding.iter_mut().enumerate() {
            assert!(
                until_closed(stream, deadline).await.is_some(),
                "connection {i}, sending no complete headers, still open {:?} after it opened",
                2 * HEADER_TIMEOUT
            );
        }
        // The control: the server still answers a scrape.
        let answer = scrape(address).await.unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.contains("dock6_build_info"), "{answer:?}");
    }

    /// The metric names an operator's alert rules use (docs/fleet.md) are the
    /// names served, as samples.
    #[test]
    fn the_metrics_the_fleet_guide_names_are_served() {
        let m = Metrics::new();
        m.pass("failed", Duration::from_millis(3));
        m.error("table");
        let text = m.encode();
        let served: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let guide = include_str!("../../docs/fleet.md");
        let named: std::collections::BTreeSet<&str> = guide
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter_map(|w| Some((w, w.strip_prefix("dock6_")?)))
            // Metric names, not file names (`dock6_0.1.0_amd64.deb`).
            .filter(|(_, rest)| {
                rest.starts_with(|c: char| c.is_ascii_lowercase())
                    && rest.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
            .map(|(w, _)| w)
            .collect();
        assert!(named.len() >= 4, "the guide names metrics: {named:?}");
        let unknown: Vec<&&str> = named.iter().filter(|n| !served.contains(**n)).collect();
        assert!(
            unknown.is_empty(),
            "docs/fleet.md names metrics dock6 does not serve: {unknown:?}; served: {served:?}"
        );
    }

    #[test]
    fn every_metric_is_in_the_text() {
        let m = Metrics::new();
        m.pass("converged", Duration::from_millis(3));
        m.error("table");
        m.containers.set(2);
        let text = m.encode();
        for line in [
            "dock6_passes_total{result=\"converged\"} 1",
            "dock6_pass_duration_seconds_count 1",
            "dock6_errors_total{kind=\"table\"} 1",
            "dock6_containers 2",
            "dock6_build_info{version=\"",
            "# TYPE dock6_kernel_transactions counter",
            "# TYPE dock6_tamper_restores counter",
            "# TYPE dock6_docker_reconnects counter",
            "# TYPE dock6_element_changes counter",
            "# TYPE dock6_published_ports gauge",
            "# TYPE dock6_proxy_entries gauge",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
    }

    #[test]
    fn an_nptv6_mapping_is_shown_and_a_move_counted_without_the_old_prefix() {
        use crate::plan::{Mode, ModeSource, NetworkPlan, PrefixSource};
        use std::time::UNIX_EPOCH;
        let m = Metrics::new();
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let web = |prefix: &str| NetworkPlan {
            name: "web".into(),
            bridge: "br-0".into(),
            subnets: vec!["fd00::/80".parse().unwrap()],
            mode: Mode::Nptv6,
            mode_source: ModeSource::Label,
            icc: true,
            masquerade: true,
            internal: false,
            unprotected: false,
            nptv6: Some(prefix.parse().unwrap()),
            nptv6_source: Some(PrefixSource::Uplink),
        };
        let mut mappings = Mappings::default();
        mappings.follow(&[web("2001:db8:a::/80")], at(1000));
        m.mappings(&mappings);
        let text = m.encode();
        for line in [
            "dock6_nptv6_mapped{network=\"web\",prefix=\"2001:db8:a::/80\"} 1",
            "dock6_nptv6_mapping_changed_timestamp_seconds{network=\"web\"} 1000",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        for change in mappings.follow(&[web("2001:db8:b::/80")], at(2000)) {
            m.mapping_moved(&change);
        }
        m.mappings(&mappings);
        let text = m.encode();
        assert!(
            !text.contains("2001:db8:a::/80"),
            "the old prefix's series is gone:\n{text}"
        );
        for line in [
            "dock6_nptv6_mapped{network=\"web\",prefix=\"2001:db8:b::/80\"} 1",
            "dock6_nptv6_mapping_changes_total{network=\"web\"} 1",
            "dock6_nptv6_mapping_changed_timestamp_seconds{network=\"web\"} 2000",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        // The network goes: so do its mapping's series.
        mappings.follow(&[], at(3000));
        m.mappings(&mappings);
        assert!(
            !m.encode().contains("dock6_nptv6_mapped{"),
            "{}",
            m.encode()
        );
    }
}
