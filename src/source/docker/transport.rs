//! dock6's own connections to Docker, for bollard (`CustomTransport`): one
//! fresh connection per request, whose reads are bounded. bollard reads a
//! whole answer into memory before parsing it, with no limit on its size and
//! no time limit once the headers are in; a Docker that answers tens of
//! megabytes, or an answer that never ends, would otherwise eat memory or
//! hang the watcher for good. Each answer may be at most [`MAX_ANSWER_BYTES`]
//! and must be complete within [`ANSWER_TIMEOUT`], except the event stream,
//! which is open-ended by design.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::BollardRequest;
use bollard::errors::Error as BollardError;
use hyper::Uri;
use hyper::header::{HOST, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Sleep;
use tracing::debug;

/// The largest answer read from Docker, headers included. A network list or
/// container inspect is kilobytes; a list of 10,000 containers is about 15 MiB.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// How long one answer may take, from the request to its last byte.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Docker listens.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Endpoint {
    async fn connect(&self) -> io::Result<Stream> {
        Ok(match self {
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
            Endpoint::Tcp(authority) => Stream::Tcp(TcpStream::connect(authority).await?),
        })
    }
}

/// Sends `request` to `endpoint` over a new connection and returns the
/// answer, whose body is read under the limits above.
pub async fn send(
    endpoint: Endpoint,
    mut request: BollardRequest,
) -> Result<hyper::Response<hyper::body::Incoming>, BollardError> {
    {
        let open_ended = request.uri().path().ends_with("/events");
        // On its own connection a request names its path only (origin form);
        // Docker (Go's net/http) wants a Host header on HTTP/1.1.
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(path);
        request
            .headers_mut()
            .insert(HOST, HeaderValue::from_static("docker"));
        let stream = endpoint.connect().await.map_err(io_error)?;
        let io = match open_ended {
            true => Bounded::unbounded(stream),
            false => Bounded::new(stream, MAX_ANSWER_BYTES, ANSWER_TIMEOUT),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(BollardError::from)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!("connection to Docker: {e}");
            }
        });
        sender
            .send_request(request)
            .await
            .map_err(BollardError::from)
    }
}

fn io_error(e: io::Error) -> BollardError {
    BollardError::IOError { err: e }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// A connection whose reads end with an error past a byte budget or a deadline.
struct Bounded {
    stream: Stream,
    /// Bytes that may still be read; `None`: no limit.
    left: Option<usize>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Bounded {
    fn new(stream: Stream, bytes: usize, time: Duration) -> Bounded {
        Bounded {
            stream,
            left: Some(bytes),
            deadline: Some(Box::pin(tokio::time::sleep(time))),
        }
    }

    fn unbounded(stream: Stream) -> Bounded {
        Bounded {
            stream,
            left: None,
            deadline: None,
        }
    }
}

impl AsyncRead for Bounded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("Docker's answer took longer than {ANSWER_TIMEOUT:?}; dropped"),
            )));
        }
        let before = buf.filled().len();
        let result = match &mut this.stream {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        };
        if let (Poll::Ready(Ok(())), Some(left)) = (&result, this.left.as_mut()) {
            let read = buf.filled().len() - before;
            match left.checked_sub(read) {
                Some(rest) => *left = rest,
                None => {
                    return Poll::Ready(Err(io::Error::other(format!(
                        "Docker's answer is larger than {} MiB; dropped",
                        MAX_ANSWER_BYTES >> 20
                    ))));
                }
            }
        }
        result
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
