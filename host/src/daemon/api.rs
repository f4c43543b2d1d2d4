//! The daemon's HTTP API, its metrics and health, and the dashboard page.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the dashboard (HTML, CSS and JavaScript built into the binary) |
//! | `GET /healthz` | `ok`, or `degraded` with the problems of the last reload; 503 while stopping |
//! | `GET /metrics` | Prometheus' text format |
//! | `GET /api/dataflows` | the dataflow list |
//! | `GET /api/workers` | the workers sharing runs through the state store, with what each loads |
//! | `GET /api/dataflows/{name}` | one dataflow, with its schedule, next slot and tables |
//! | `GET /api/dataflows/{name}/runs` | its run history, newest first |
//! | `GET /api/dataflows/{name}/runs/{run}` | the objects of one run |
//! | `GET /api/dataflows/{name}/rejects?run=N&reason=TEXT` | its rejected rows, raw text and all (as `sluice rejects`) |
//! | `GET /api/dataflows/{name}/preview` | what its next run would take, and the first records (as `sluice preview`) |
//! | `GET /api/dataflows/{name}/diff` | for a Stripe sink, what the next run would change there (as `sluice preview --diff`) |
//! | `POST /api/dataflows/{name}/run` | queues a run (202) |
//! | `POST /api/dataflows/{name}/rollback` | takes the tables back before the newest run |
//! | `POST /api/dataflows/{name}/replay` | tries its rejected rows again (as `sluice run --replay-rejects`) |
//! | `DELETE /api/dataflows/{name}` | removes the dataflow's tables and state |
//!
//! The write routes, and the rejected rows, preview and diff (which hold the data itself), take `Authorization: Bearer TOKEN`
//! where `[daemon] token` is set. Bound beyond
//! loopback without a token they are refused; on loopback without one they need an
//! `X-Requested-With` header, which a page of another origin cannot send without the browser asking
//! first (and it is not answered), so a web page cannot drive a local daemon through its visitor.

use super::{Activity, Daemon, NotStarted, Trigger, scheduler};
use crate::config::DaemonConfig;
use crate::overview::{self, DataflowSummary, RunSummary};
use crate::state::LockError;
use crate::sync::SyncError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

const DASHBOARD_HTML: &str = include_str!("dashboard/index.html");
const DASHBOARD_CSS: &str = include_str!("dashboard/dashboard.css");
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");

/// Buckets of the plugin-call histogram, in seconds: a 1 MiB chunk takes milliseconds.
const PLUGIN_CALL_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

type Shared = Arc<Daemon>;

/// Records the dashboard's Stripe diff compares at most.
const DIFF_RECORDS: usize = 1000;

/// Serves until `stopped` is notified; requests in flight then finish.
pub(super) async fn serve(daemon: Shared, listener: tokio::net::TcpListener, stopped: Arc<Notify>) {
    let app = Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DASHBOARD_HTML) }))
        .route(
            "/dashboard.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], DASHBOARD_CSS) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], DASHBOARD_JS) }),
        )
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/api/dataflows", get(list))
        .route("/api/workers", get(workers))
        .route("/api/dataflows/{name}", get(detail).delete(remove))
        .route("/api/dataflows/{name}/runs", get(runs))
        .route("/api/dataflows/{name}/runs/{run}", get(run_objects))
        .route("/api/dataflows/{name}/rejects", get(rejects))
        .route("/api/dataflows/{name}/preview", get(preview))
        .route("/api/dataflows/{name}/diff", get(diff))
        .route("/api/dataflows/{name}/run", post(run))
        .route("/api/dataflows/{name}/rollback", post(rollback))
        .route("/api/dataflows/{name}/replay", post(replay))
        .with_state(daemon);
    let shutdown = async move { stopped.notified().await };
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!("the HTTP API stopped: {error}");
    }
}

/// Installs the process's Prometheus recorder, where it is not installed yet.
pub(super) fn install_recorder() {
    prometheus();
}

/// The process's Prometheus recorder, installed on first use. The `metrics` facade takes one recorder
/// per process, so a second daemon in the same process renders the same registry.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(crate::metrics::PLUGIN_CALL_SECONDS.into()),
                PLUGIN_CALL_BUCKETS,
            )
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics shows only what this one sees");
        }
        crate::metrics::describe();
        handle
    })
}

/// An API error: a status and a message, as `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no dataflow `{name}`"))
}

/// Runs blocking work (the state store, the sinks) off the runtime's threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("the request's work panicked: {e}")))
}

async fn health(State(daemon): State<Shared>) -> Response {
    let generation = daemon.generation();
    let problems = daemon.problems();
    let status = match (daemon.stopping(), problems.is_empty()) {
        (true, _) => "stopping",
        (false, true) => "ok",
        (false, false) => "degraded",
    };
    let code = if daemon.stopping() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let body = json!({
        "status": status,
        "problems": problems,
        "configuration": generation.config.path().display().to_string(),
        "generation": generation.number,
        "loaded_at": humantime::format_rfc3339_seconds(generation.loaded_at).to_string(),
        "started_at": humantime::format_rfc3339_seconds(daemon.started_at()).to_string(),
        "dataflows": generation.config.dataflows.len(),
    });
    (code, Json(body)).into_response()
}

async fn metrics() -> Response {
    let handle = prometheus();
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}

/// A line of the dataflow list, as the API and the dashboard show it.
#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    summary: DataflowSummary,
    /// `queued` or `running` in this daemon, where it is.
    activity: Option<Activity>,
    schedule: String,
    next_run: Option<String>,
}

/// A line of the list from the state store's `summary` and this daemon's `activities`, taken before it:
/// a run this daemon has queued or running shows as such, whatever the store said a moment later (it
/// knows a run only once it began, and would show a run that just ended beside the next one begun);
/// where this daemon has none, the store's word stands (another process may be running it).
fn listed(
    generation: &super::Generation,
    activities: &HashMap<String, Activity>,
    mut summary: DataflowSummary,
) -> Listed {
    let activity = activities.get(&summary.name).copied();
    if let Some(activity) = activity {
        summary.status = activity.as_str().to_string();
    }
    let dataflow = &generation.config.dataflows[&summary.name];
    Listed {
        activity,
        schedule: schedule_text(&dataflow.schedule),
        next_run: scheduler::next_slot(generation, &summary.name).map(|at| at.to_string()),
        summary,
    }
}

fn schedule_text(schedule: &crate::config::Schedule) -> String {
    use crate::config::Schedule;
    match schedule {
        Schedule::Daily => "daily".into(),
        Schedule::DailyAt { hour, minute } => format!("daily at {hour:02}:{minute:02}"),
        Schedule::Every(interval) => format!("every {}", humantime::format_duration(*interval)),
        Schedule::Cron(expression) => expression.clone(),
        Schedule::Manual => "manual".into(),
    }
}

async fn list(State(daemon): State<Shared>) -> Result<Json<Vec<Listed>>, ApiError> {
    let generation = daemon.generation();
    let activities = daemon.activities();
    let reading = generation.clone();
    let summaries = blocking(move || overview::dataflows(&reading.config))
        .await?
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(summaries.into_iter().map(|summary| listed(&generation, &activities, summary)).collect()))
}

async fn workers(State(daemon): State<Shared>) -> Result<Response, ApiError> {
    let generation = daemon.generation();
    let workers = blocking(move || overview::workers(&generation.config))
        .await?
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(workers).into_response())
}

async fn detail(State(daemon): State<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let generation = daemon.generation();
    let Some(dataflow) = generation.config.dataflows.get(&name) else { return Err(not_found(&name)) };
    let activities = daemon.activities();
    let reading = generation.clone();
    let (summaries, tables) =
        blocking(move || (overview::dataflows(&reading.config), overview::tables(&reading.config))).await?;
    let summaries = summaries.map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let summary = summaries.into_iter().find(|s| s.name == name).ok_or_else(|| not_found(&name))?;
    let tables: Vec<_> = tables.into_iter().filter(|t| t.dataflow == name).collect();
    let time_zone = dataflow.time_zone.as_deref().unwrap_or(generation.config.daemon.time_zone());
    // As written in the file the daemon runs, secrets masked.
    let text = std::fs::read_to_string(generation.config.path()).unwrap_or_default();
    let body = json!({
        "dataflow": listed(&generation, &activities, summary),
        "description": dataflow.description,
        "time_zone": time_zone,
        "tables": tables,
        "sink": format!("{:?}", dataflow.sink.kind).to_lowercase(),
        "config": crate::config::masked_dataflow(&text, &name),
    });
    Ok(Json(body).into_response())
}

/// A run as the history shows it, or a run that failed before it began and is not in the state store yet.
#[derive(Serialize)]
struct HistoryRun {
    #[serde(flatten)]
    run: RunSummary,
    /// False for a run the state store could not take yet (it was locked or out of reach).
    recorded: bool,
}

async fn runs(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Vec<HistoryRun>>, ApiError> {
    let generation = daemon.generation();
    if !generation.config.dataflows.contains_key(&name) {
        return Err(not_found(&name));
    }
    let reading = name.clone();
    let recorded = blocking(move || overview::history(&generation.config, &reading))
        .await?
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let mut history: Vec<HistoryRun> = daemon
        .unrecorded(&name)
        .into_iter()
        .rev()
        .map(|failed| HistoryRun {
            run: RunSummary {
                run: 0,
                started: humantime::format_rfc3339_seconds(failed.started).to_string(),
                ended: Some(humantime::format_rfc3339_seconds(failed.ended).to_string()),
                duration_seconds: failed.ended.duration_since(failed.started).ok().map(|d| d.as_secs_f64()),
                status: crate::state::RunStatus::Failed.as_str().to_string(),
                objects: 0,
                failed_objects: 0,
                rows_written: 0,
                rows_rejected: 0,
                bytes: 0,
                error: Some(failed.error),
            },
            recorded: false,
        })
        .collect();
    history.extend(recorded.into_iter().map(|run| HistoryRun { run, recorded: true }));
    Ok(Json(history))
}

async fn run_objects(
    State(daemon): State<Shared>,
    Path((name, run)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let generation = daemon.generation();
    if !generation.config.dataflows.contains_key(&name) {
        return Err(not_found(&name));
    }
    let objects = blocking(move || overview::run_objects(&generation.config, &name, run))
        .await?
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(objects).into_response())
}

/// Which rejected rows `GET /api/dataflows/{name}/rejects` lists.
#[derive(serde::Deserialize)]
struct RejectsQuery {
    run: Option<i64>,
    reason: Option<String>,
}

/// The rows a dataflow rejected: their raw text is the data itself, so they are served as a write is.
async fn rejects(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
    Query(query): Query<RejectsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&daemon, &headers)?;
    let generation = daemon.generation();
    if !generation.config.dataflows.contains_key(&name) {
        return Err(not_found(&name));
    }
    let rejects =
        blocking(move || overview::rejects(&generation.config, &name, query.run, query.reason.as_deref()))
            .await?
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(Json(rejects).into_response())
}

/// Whether a write may go ahead: the token where one is set; else only on loopback, from a client that
/// sent `X-Requested-With`.
fn authorize(daemon: &Daemon, headers: &HeaderMap) -> Result<(), ApiError> {
    allowed(&daemon.generation().config.daemon, daemon.listen, headers)
}

/// [`authorize`] for the settings in force and the address the daemon listens on.
fn allowed(settings: &DaemonConfig, listening: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    match settings.token() {
        Some(token) => {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if constant_time_eq(sent.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(ApiError(
                    StatusCode::UNAUTHORIZED,
                    "this needs `Authorization: Bearer TOKEN` with the token of [daemon] token".into(),
                ))
            }
        }
        None if !listening.ip().is_loopback() => Err(ApiError(
            StatusCode::FORBIDDEN,
            "write requests are refused: the daemon listens beyond loopback and [daemon] token is not set".into(),
        )),
        None if !headers.contains_key("x-requested-with") => Err(ApiError(
            StatusCode::FORBIDDEN,
            "write requests need an `X-Requested-With` header (or set [daemon] token and send it as a bearer token)"
                .into(),
        )),
        None => Ok(()),
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn run(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&daemon, &headers)?;
    match daemon.start_run(&name, Trigger::Api) {
        Ok(()) => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "dataflow": name, "status": "queued" }))).into_response())
        }
        Err(NotStarted::UnknownDataflow) => Err(not_found(&name)),
        Err(NotStarted::AlreadyActive(activity)) => {
            Err(ApiError(StatusCode::CONFLICT, format!("dataflow `{name}` is {} already", activity.as_str())))
        }
        Err(NotStarted::Stopping) => {
            Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping".into()))
        }
    }
}

/// Refuses a change to a dataflow this daemon has queued or running; another process's run is refused by
/// the run lock.
fn refuse_while_active(daemon: &Daemon, name: &str) -> Result<(), ApiError> {
    if !daemon.generation().config.dataflows.contains_key(name) {
        return Err(not_found(name));
    }
    match daemon.activity(name) {
        Some(activity) => Err(ApiError(
            StatusCode::CONFLICT,
            format!("dataflow `{name}` is {}; try again when it ends", activity.as_str()),
        )),
        None => Ok(()),
    }
}

fn sync_error(error: SyncError) -> ApiError {
    let status = match error {
        SyncError::Locked(LockError::Held { .. }) => StatusCode::CONFLICT,
        SyncError::Plan(_) | SyncError::Config(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError(status, error.to_string())
}

/// Does `change` to the dataflow `name` on a blocking thread, once the request may: authorized, and the
/// dataflow neither queued nor running here.
async fn change_dataflow<T: Send + 'static>(
    daemon: &Daemon,
    name: &str,
    headers: &HeaderMap,
    change: impl FnOnce(&crate::config::Config, &str) -> Result<T, SyncError> + Send + 'static,
) -> Result<T, ApiError> {
    authorize(daemon, headers)?;
    refuse_while_active(daemon, name)?;
    let generation = daemon.generation();
    let dataflow = name.to_string();
    blocking(move || change(&generation.config, &dataflow)).await?.map_err(sync_error)
}

async fn rollback(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rolled_back =
        change_dataflow(&daemon, &name, &headers, |config, name| crate::sync::rollback(config, name, false))
            .await?;
    let (run, rows) = (rolled_back.run_id, rolled_back.rows_removed);
    tracing::info!(dataflow = name, run, rows, "rolled back");
    Ok(Json(json!({ "dataflow": name, "rolled_back_run": run, "rows_removed": rows })).into_response())
}

/// Reads what shows the dataflow `name`'s data itself, with nothing written: authorized as a write is,
/// then `read` on a blocking thread with the daemon and the dataflow's name.
async fn read_data<T: Serialize + Send + 'static>(
    daemon: Shared,
    name: &str,
    headers: &HeaderMap,
    read: impl FnOnce(&Daemon, &str) -> Result<T, SyncError> + Send + 'static,
) -> Result<Response, ApiError> {
    authorize(&daemon, headers)?;
    if !daemon.generation().config.dataflows.contains_key(name) {
        return Err(not_found(name));
    }
    let dataflow = name.to_string();
    let data = blocking(move || read(&daemon, &dataflow)).await?.map_err(sync_error)?;
    Ok(Json(data).into_response())
}

/// What the dataflow's next run would take, and its first records.
async fn preview(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_data(daemon, &name, &headers, |daemon, name| daemon.preview_now(name)).await
}

/// For a Stripe sink, what the next run would create, update and leave unchanged there.
async fn diff(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_data(daemon, &name, &headers, |daemon, name| {
        let generation = daemon.generation();
        daemon.runner(&generation).stripe_diff(name, DIFF_RECORDS)
    })
    .await
}

/// Tries the dataflow's rejected rows again, and answers with how it went once it has.
async fn replay(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&daemon, &headers)?;
    refuse_while_active(&daemon, &name)?;
    let (replaying, dataflow) = (daemon.clone(), name.clone());
    let replay = blocking(move || replaying.replay_now(&dataflow)).await?.map_err(sync_error)?;
    let run = &replay.run;
    Ok(Json(json!({
        "dataflow": name,
        "run": run.run_id,
        "status": run.status.as_str(),
        "retried": replay.retried,
        "went_through": run.counts.rows,
        "rejected_again": run.counts.rejected,
        "left": replay.left.len(),
        "error": run.error,
    }))
    .into_response())
}

async fn remove(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rows = change_dataflow(&daemon, &name, &headers, crate::sync::remove).await?;
    tracing::info!(dataflow = name, rows, "removed");
    Ok(Json(json!({ "dataflow": name, "rows_removed": rows })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn settings(daemon: &str) -> DaemonConfig {
        crate::config::Config::parse(&format!("[daemon]\n{daemon}\n"), std::path::Path::new("connector.toml"))
            .unwrap()
            .daemon
    }

    fn status(
        settings: &DaemonConfig,
        listening: &str,
        headers: &[(&'static str, &'static str)],
    ) -> StatusCode {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        match allowed(settings, listening.parse().unwrap(), &map) {
            Ok(()) => StatusCode::OK,
            Err(ApiError(status, _)) => status,
        }
    }

    #[test]
    fn writes_beyond_loopback_need_the_token_and_are_refused_without_one() {
        let open = settings("");
        assert_eq!(status(&open, "0.0.0.0:7878", &[("x-requested-with", "x")]), StatusCode::FORBIDDEN);
        assert_eq!(status(&open, "[::]:7878", &[]), StatusCode::FORBIDDEN);
        assert_eq!(
            status(&open, "127.0.0.1:7878", &[]),
            StatusCode::FORBIDDEN,
            "no header a page could not send"
        );
        assert_eq!(status(&open, "127.0.0.1:7878", &[("x-requested-with", "x")]), StatusCode::OK);

        let guarded = settings("token = \"s3cret\"");
        assert_eq!(status(&guarded, "0.0.0.0:7878", &[("authorization", "Bearer s3cret")]), StatusCode::OK);
        assert_eq!(
            status(&guarded, "0.0.0.0:7878", &[("authorization", "Bearer s3cre")]),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&guarded, "127.0.0.1:7878", &[("x-requested-with", "x")]),
            StatusCode::UNAUTHORIZED
        );
        let empty = settings("token = \"${SLUICE_TEST_UNSET_TOKEN:-}\"");
        assert_eq!(status(&empty, "0.0.0.0:7878", &[]), StatusCode::FORBIDDEN, "an empty token is no token");
    }
}
