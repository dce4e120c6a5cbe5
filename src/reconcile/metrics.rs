//! Prometheus metrics (`dock6 run --metrics ADDR`, config `metrics_address`):
//! `http://ADDR/metrics` in the text format, from `prometheus-client`.
//! The loop records into them where it records what `dock6 status` shows
//! (see `status::Shown`); serving never waits for a pass.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, info};

/// A scraper that holds a connection longer than this is dropped.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabel {
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabel {
    pub kind: String,
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
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                debug!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // A timeout just drops the connection.
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                debug!("metrics: connection: {e}");
            }
        });
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
}
