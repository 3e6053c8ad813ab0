//! The control API of a running job (axum), on loopback unless told otherwise.
//!
//! | call | what |
//! | --- | --- |
//! | `GET /jobs` | the job: id, name, state, records in/out |
//! | `GET /jobs/{job}/plugins` | each operator that runs a plugin, with every version |
//! | `POST /jobs/{job}/operators/{operator}/deploy` | body: a component's bytes; swaps it in (`?canary=0.1`: after a canary on that share of the batches) |
//! | `POST /jobs/{job}/operators/{operator}/rollback` | runs the version before again |
//! | `POST /jobs/{job}/cancel` | sources stop; the job ends with what it read |
//! | `GET /metrics` | Prometheus text |
//!
//! `POST` calls need `Authorization: Bearer <token>` (the token file's content); the token
//! is checked before the body is read, so an unauthenticated upload costs nothing. Bodies
//! over the upload limit get 413. Names in paths are checked ([`validate_job_id`],
//! [`validate_operator`]) and only ever compared with the job's own names. Every error is
//! JSON: `{"error": what failed, "hint": what to do}`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use thiserror::Error;

use super::run_dir::{RunDirError, RunFiles};
use super::{validate_job_id, validate_operator};
use crate::deploy::DeployError;
use crate::env::JobHandle;

/// The default upload limit: 64 MiB (a Python plugin with its interpreter is ~40 MiB).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 64 << 20;

/// Where and how the API listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: SocketAddr,
    /// Allow an address other than loopback (the token is then all that protects the job).
    pub allow_remote: bool,
    pub max_upload_bytes: usize,
    /// Where the run files go.
    pub run_dir: PathBuf,
}

impl ServerConfig {
    pub fn new(run_dir: PathBuf) -> Self {
        Self {
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            allow_remote: false,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            run_dir,
        }
    }
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(
        "refusing to serve the control API on {0}: it is not a loopback address; pass --api-allow-remote if \
         you mean it (the token is then all that protects the job)"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {address}: {source} (choose another with --api ADDR)")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("cannot start the control API's runtime: {0}")]
    Runtime(std::io::Error),
}

/// A serving control API; stops, and removes the run files, on drop.
pub struct ControlServer {
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    address: SocketAddr,
    files: RunFiles,
}

impl ControlServer {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn id(&self) -> &str {
        self.files.id()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
        }
        self.files.remove();
    }
}

struct Api {
    id: String,
    job: JobHandle,
    token: String,
    token_file: PathBuf,
    max_upload_bytes: usize,
    started_at_ms: i64,
}

/// Serve `job`'s control API in the background (its own small runtime) and write its run
/// files. Ctrl-C or SIGTERM then cancels the job; a second Ctrl-C exits at once.
pub fn serve(job: JobHandle, config: &ServerConfig) -> Result<ControlServer, ServeError> {
    if !config.address.ip().is_loopback() {
        if !config.allow_remote {
            return Err(ServeError::NotLoopback(config.address));
        }
        tracing::warn!(address = %config.address, "the control API listens beyond this machine; anyone who has the token can deploy code into the job");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("weir-control")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.address))
        .map_err(|source| ServeError::Bind { address: config.address, source })?;
    let address = listener.local_addr().map_err(|source| ServeError::Bind { address: config.address, source })?;
    let mut files = RunFiles::claim(&config.run_dir, job.name())?;
    files.publish(address)?;
    let api = Arc::new(Api {
        id: files.id().to_string(),
        job: job.clone(),
        token: files.token().to_string(),
        token_file: files.dir().join(format!("{}.token", files.id())),
        max_upload_bytes: config.max_upload_bytes,
        started_at_ms: crate::time::now_ms(),
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(api, config.max_upload_bytes);
    runtime.spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the control API stopped");
        }
    });
    runtime.spawn(stop_on_signal(job, files.dir().to_path_buf(), files.id().to_string()));
    tracing::info!(job = %files.id(), %address, "control API listening");
    Ok(ControlServer { runtime: Some(runtime), shutdown: Some(tx), address, files })
}

fn router(api: Arc<Api>, max_upload_bytes: usize) -> Router {
    Router::new()
        .route("/jobs", get(jobs))
        .route("/jobs/{job}", get(job))
        .route("/jobs/{job}/plugins", get(plugins))
        .route("/jobs/{job}/operators/{operator}/deploy", post(deploy))
        .route("/jobs/{job}/operators/{operator}/rollback", post(rollback))
        .route("/jobs/{job}/cancel", post(cancel))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such endpoint", "see docs/control-api.md for the API's calls")
        })
        .layer(DefaultBodyLimit::max(max_upload_bytes))
        .with_state(api)
}

/// First Ctrl-C (or SIGTERM): cancel the job, which then ends cleanly. Second: leave now.
async fn stop_on_signal(job: JobHandle, dir: PathBuf, id: String) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for round in 0.. {
        #[cfg(unix)]
        let terminate = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_err() { return },
            () = terminate => {}
        }
        if round == 0 {
            tracing::warn!(job = %id, "stopping: the sources end now and the job finishes with what they read (Ctrl-C again to quit at once)");
            job.cancel();
        } else {
            for ext in ["json", "token"] {
                let _ = std::fs::remove_file(dir.join(format!("{id}.{ext}")));
            }
            std::process::exit(130);
        }
    }
}

/// A failed call: its status and a JSON body saying what failed and what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    hint: String,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { status, error: error.into(), hint: hint.into() }
    }

    fn bad_name(error: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, "names in paths are job ids and operator names, never file paths")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"error": self.error, "hint": self.hint}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The caller sent the job's token.
struct Authorized;

impl FromRequestParts<Arc<Api>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, ApiError> {
        let hint = format!("the token is in {} (the weir CLI sends it)", api.token_file.display());
        let given = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match given.and_then(|v| v.strip_prefix("Bearer ")) {
            None => {
                Err(ApiError::new(StatusCode::UNAUTHORIZED, "this call needs `Authorization: Bearer <token>`", hint))
            }
            Some(token) if same_secret(token.trim().as_bytes(), api.token.as_bytes()) => Ok(Authorized),
            Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong bearer token", hint)),
        }
    }
}

/// Compares in time that depends on the lengths only.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Api {
    /// The job id in a path: well-formed, and this job's.
    fn check_job(&self, job: &str) -> Result<(), ApiError> {
        validate_job_id(job).map_err(ApiError::bad_name)?;
        if job != self.id {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no job `{job}` here; this API serves job `{}`", self.id),
                "`weir jobs` lists the running jobs and their ids",
            ));
        }
        Ok(())
    }

    fn check_running(&self) -> Result<(), ApiError> {
        if self.job.control().is_finished() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("job `{}` has finished", self.id),
                "start it again",
            ));
        }
        Ok(())
    }

    fn summary(&self) -> Value {
        let control = self.job.control();
        let state = match (control.is_finished(), control.is_cancelled()) {
            (true, _) => "finished",
            (false, true) => "cancelling",
            (false, false) => "running",
        };
        json!({
            "id": self.id,
            "name": self.job.name(),
            "state": state,
            "records_in": control.records_in(),
            "records_out": control.records_out(),
            "started_at_ms": self.started_at_ms,
            "pid": std::process::id(),
        })
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::bad_name(format!("bad path: {}", rejection.body_text()))
}

fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is larger than the limit of {limit} bytes"),
            "start the job with a larger --max-upload-mib if the plugin really is that big",
        );
    }
    ApiError::new(
        rejection.status(),
        format!("cannot read the upload: {}", rejection.body_text()),
        "send the .wasm file's bytes as the body",
    )
}

async fn jobs(State(api): State<Arc<Api>>) -> Json<Value> {
    Json(json!({ "jobs": [api.summary()] }))
}

async fn job(State(api): State<Arc<Api>>, path: Result<Path<String>, PathRejection>) -> Result<Json<Value>, ApiError> {
    let Path(job) = path.map_err(path_error)?;
    api.check_job(&job)?;
    Ok(Json(api.summary()))
}

async fn plugins(
    State(api): State<Arc<Api>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(job) = path.map_err(path_error)?;
    api.check_job(&job)?;
    let operators: Vec<Value> = api
        .job
        .versions()
        .into_iter()
        .map(|(operator, versions)| json!({"operator": operator, "versions": versions}))
        .collect();
    Ok(Json(json!({"job": api.id, "operators": operators})))
}

/// `?canary=0.1`: run the new version on that share of the batches first.
#[derive(Debug, serde::Deserialize)]
struct DeployOptions {
    canary: Option<f64>,
}

async fn deploy(
    State(api): State<Arc<Api>>,
    _: Authorized,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(options): Query<DeployOptions>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((job, operator)) = path.map_err(path_error)?;
    api.check_job(&job)?;
    validate_operator(&operator).map_err(ApiError::bad_name)?;
    let bytes = body.map_err(|r| body_error(r, api.max_upload_bytes))?;
    if !bytes.starts_with(b"\0asm") {
        let what = if bytes.is_empty() { "the upload is empty" } else { "the upload is not WebAssembly" };
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{what}: a component starts with the bytes `\\0asm`"),
            "send the .wasm file that `weir plugin build` wrote",
        ));
    }
    api.check_running()?;
    let step = api.job.targets().find(&operator).map_err(deploy_error)?.step.clone();
    let job = api.job.clone();
    let origin = format!("upload to `{step}`");
    let target = step.clone();
    // Compiling takes from milliseconds (cached) to seconds: off the async threads.
    let record = tokio::task::spawn_blocking(move || match options.canary {
        Some(share) => job.deploy_canary(&target, &bytes, FsPath::new(&origin), share),
        None => job.deploy(&target, &bytes, FsPath::new(&origin)),
    })
    .await
    .map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the deploy failed: {e}"), "see the job's log")
    })?
    .map_err(deploy_error)?;
    Ok(Json(json!({"job": api.id, "operator": step, "version": record})))
}

async fn rollback(
    State(api): State<Arc<Api>>,
    _: Authorized,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((job, operator)) = path.map_err(path_error)?;
    api.check_job(&job)?;
    validate_operator(&operator).map_err(ApiError::bad_name)?;
    api.check_running()?;
    let step = api.job.targets().find(&operator).map_err(deploy_error)?.step.clone();
    let record = api.job.rollback(&step).map_err(deploy_error)?;
    Ok(Json(json!({"job": api.id, "operator": step, "version": record})))
}

async fn cancel(
    State(api): State<Arc<Api>>,
    _: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Path(job) = path.map_err(path_error)?;
    api.check_job(&job)?;
    api.check_running()?;
    tracing::warn!(job = %api.id, "cancelled through the control API");
    api.job.cancel();
    Ok((StatusCode::ACCEPTED, Json(api.summary())))
}

/// Counters in Prometheus' text format.
async fn metrics(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let control = api.job.control();
    let job = label(&api.id);
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            text.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    };
    let job_label = format!("job=\"{job}\"");
    metric(
        "weir_records_in_total",
        "counter",
        "Records the job's source shipped.",
        &[(job_label.clone(), control.records_in())],
    );
    metric(
        "weir_records_out_total",
        "counter",
        "Records the job's sink received.",
        &[(job_label.clone(), control.records_out())],
    );
    let generations: Vec<(String, u64)> = api
        .job
        .targets()
        .0
        .iter()
        .map(|t| {
            (format!("{job_label},operator=\"{}\",uid=\"{}\"", label(&t.step), label(&t.uid)), t.cell.generation())
        })
        .collect();
    let connectors = control.connectors().all();
    let of = |h: &crate::task::ConnectorHealth| format!("{job_label},connector=\"{}\"", label(&h.name));
    metric(
        "weir_connector_up",
        "gauge",
        "Whether an external connector (Kafka, PostgreSQL) is connected: 1, or 0 while it retries.",
        &connectors.iter().map(|h| (of(h), u64::from(h.is_up()))).collect::<Vec<_>>(),
    );
    metric(
        "weir_connector_retries_total",
        "counter",
        "Times an external connector retried after losing its broker or database.",
        &connectors.iter().map(|h| (of(h), h.retries())).collect::<Vec<_>>(),
    );
    metric(
        "weir_plugin_generation",
        "gauge",
        "The plugin version an operator runs (1, then one more per swap).",
        &generations,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn deploy_error(e: DeployError) -> ApiError {
    let status = match &e {
        DeployError::UnknownStep { .. } => StatusCode::NOT_FOUND,
        DeployError::AmbiguousStep { .. } => StatusCode::BAD_REQUEST,
        DeployError::Load(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DeployError::Incompatible { .. } | DeployError::NothingToRollBack { .. } => StatusCode::CONFLICT,
    };
    let hint = match &e {
        DeployError::UnknownStep { .. } | DeployError::AmbiguousStep { .. } => {
            "`weir plugins JOB` lists the operators; give a full name or a part only one contains"
        }
        DeployError::Load(_) => "check the file with `weir plugin inspect FILE`; the job runs on unchanged",
        DeployError::Incompatible { .. } => "the job runs on with the version it had",
        DeployError::NothingToRollBack { .. } => "the operator runs the version the job started with",
    };
    ApiError::new(status, e.to_string(), hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"ab", b"abc"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
