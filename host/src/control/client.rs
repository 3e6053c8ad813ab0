//! A tiny HTTP/1 client for the CLI: one request per connection to a job's control API on
//! this machine. hyper is already built for the server; this adds only its client half.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use thiserror::Error;

/// How long connecting may take: the API is local, so a slow connect means it is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole call may take (a deploy compiles the component first).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect { address: SocketAddr, source: std::io::Error },
    #[error("the call to {address} failed: {message}")]
    Http { address: SocketAddr, message: String },
    #[error("the call to {address} took longer than {}s", CALL_TIMEOUT.as_secs())]
    Timeout { address: SocketAddr },
}

/// What the API answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Send one request and read the whole reply.
pub fn call(
    address: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<Reply, ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Http { address, message: format!("cannot start a runtime: {e}") })?;
    rt.block_on(async {
        match tokio::time::timeout(CALL_TIMEOUT, send(address, method, path, token, body)).await {
            Ok(reply) => reply,
            Err(_) => Err(ClientError::Timeout { address }),
        }
    })
}

async fn send(
    address: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<Reply, ClientError> {
    let http = |e: &dyn std::fmt::Display| ClientError::Http { address, message: e.to_string() };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(ClientError::Connect { address, source }),
        Err(_) => {
            let source = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
            return Err(ClientError::Connect { address, source });
        }
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| http(&e))?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, address.to_string())
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body))).map_err(|e| http(&e))?;
    let response = sender.send_request(request).await.map_err(|e| http(&e))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| http(&e))?.to_bytes().to_vec();
    Ok(Reply { status, body })
}

/// `s` as one URL path segment: unreserved characters as they are, the rest percent-encoded.
///
/// ```
/// assert_eq!(weir::control::client::path_segment("map[0] a@1.0.tag"), "map%5B0%5D%20a%401.0.tag");
/// ```
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
