//! Integration tests of the HTTP face, each against a server started
//! in-process on 127.0.0.1:0 over the in-memory demo element, with real
//! peers: xmllint, promtool, a Prometheus server and headless Chromium.

mod api;
mod browser;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use halyard_cluster_model::memory::{MemoryModel, demo_element};
use halyard_cluster_model::meta::ClassMeta;
use halyard_cluster_model::model::JobState;
use halyard_cluster_model::port::{
    Change, Forward, InformationModel, JobHandle, JobStatus, ManagedObject, ModelError, Principal,
    Transaction, TxError,
};
use halyard_cluster_model::{ObjectName, SCHEMA, Timestamp, Value};
use halyard_http::{HttpConfig, HttpError, HttpServer, Limits, Role, UserConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: (&str, &str) = ("admin", "admin-secret");
pub const VIEWER: (&str, &str) = ("viewer", "viewer-secret");
pub const OPERATOR_TOKEN: &str = "operator-token-0123456789";
/// The operation the test model refuses as a COpCo conflict.
pub const CONFLICTING: &str = "SwitchOver";
pub const CONFLICT_REASON: &str = "a switch-over of ne=1/sg=counter is already running";

/// Test scaffolding: the in-memory model, plus what the agent would do for
/// a few operations so the console has something to show (lock and unlock
/// set AdminState and publish StateChanged; InjectFault raises an alarm;
/// Acknowledge marks it) and one operation that COpCo refuses.
#[derive(Debug)]
pub struct TestModel {
    pub inner: MemoryModel,
    alarms: AtomicU32,
    /// Progress senders of the RunDiagnostics jobs, which the test drives.
    pub diagnostics: std::sync::Mutex<Vec<tokio::sync::watch::Sender<JobStatus>>>,
    /// The `limit` of every `walk` call (scrapes read the model in pages).
    pub walks: std::sync::Mutex<Vec<usize>>,
}

fn value(class: &str, attr: &str, text: &str) -> Value {
    let (_, a) = SCHEMA.class(class).unwrap().attribute(attr).unwrap();
    Value::parse(&a.ty, text).unwrap()
}

fn values_of(class: &str, given: &[(&str, Value)]) -> Vec<Value> {
    let c: &ClassMeta = SCHEMA.class(class).unwrap();
    c.attributes
        .iter()
        .map(|a| {
            given
                .iter()
                .find(|(n, _)| *n == a.name)
                .map_or(Value::Absent, |(_, v)| v.clone())
        })
        .collect()
}

impl Default for TestModel {
    fn default() -> Self {
        Self::new()
    }
}

impl TestModel {
    pub fn new() -> Self {
        TestModel {
            inner: demo_element(),
            alarms: AtomicU32::new(0),
            diagnostics: std::sync::Mutex::new(Vec::new()),
            walks: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Raises an alarm: creates the Alarm object and publishes AlarmRaised.
    pub async fn raise_alarm(&self, resource: &str, severity: &str, problem: &str) -> String {
        let n = self.alarms.fetch_add(1, Ordering::SeqCst) + 1;
        let name = format!("ne=1/alarm={n}");
        let now = Value::Time(Timestamp::now());
        let values = vec![
            ("Resource".to_string(), Value::Str(resource.into())),
            (
                "EventType".into(),
                value("Alarm", "EventType", "equipment-alarm"),
            ),
            (
                "ProbableCause".into(),
                value("Alarm", "ProbableCause", "application-subsystem-failure"),
            ),
            ("Severity".into(), value("Alarm", "Severity", severity)),
            ("SpecificProblem".into(), Value::Str(problem.into())),
            ("RaisedAt".into(), now.clone()),
            ("ChangedAt".into(), now),
            ("Occurrences".into(), Value::U32(1)),
        ];
        self.inner
            .transact(Transaction {
                principal: Principal::new("test", halyard_cluster_model::model::Protocol::Internal),
                changes: vec![Change::Create {
                    class: "Alarm".into(),
                    object: ObjectName::parse(&name).unwrap(),
                    values,
                }],
            })
            .await
            .unwrap();
        self.inner
            .publish(
                "AlarmRaised",
                &ObjectName::parse(resource).unwrap(),
                values_of(
                    "AlarmRaised",
                    &[
                        ("Alarm", Value::Str(name.clone())),
                        ("Resource", Value::Str(resource.into())),
                        ("Severity", value("AlarmRaised", "Severity", severity)),
                        ("SpecificProblem", Value::Str(problem.into())),
                    ],
                ),
            )
            .unwrap();
        name
    }

    async fn acknowledge(&self, alarm: &ObjectName, user: &str) -> Result<(), ModelError> {
        // Acknowledged is read-only in the schema: the agent sets it; here
        // the alarm is re-created with it set.
        let old = self.inner.get(alarm).await?;
        let mut values: Vec<(String, Value)> = old
            .class
            .attributes
            .iter()
            .zip(&old.values)
            .filter(|(a, v)| !a.key && a.name != "Parent" && !matches!(v, Value::Absent))
            .map(|(a, v)| (a.name.to_string(), v.clone()))
            .collect();
        values.retain(|(n, _)| n != "Acknowledged" && n != "AcknowledgedBy");
        values.push(("Acknowledged".into(), Value::Bool(true)));
        values.push(("AcknowledgedBy".into(), Value::Str(user.into())));
        let p = Principal::new("test", halyard_cluster_model::model::Protocol::Internal);
        let fail = |e: TxError| e.error;
        self.inner
            .transact(Transaction {
                principal: p.clone(),
                changes: vec![Change::Delete {
                    object: alarm.clone(),
                }],
            })
            .await
            .map_err(fail)?;
        self.inner
            .transact(Transaction {
                principal: p,
                changes: vec![Change::Create {
                    class: "Alarm".into(),
                    object: alarm.clone(),
                    values,
                }],
            })
            .await
            .map_err(fail)
    }

    async fn set_admin(&self, target: &ObjectName, label: &str) -> Result<(), ModelError> {
        self.inner
            .transact(Transaction {
                principal: Principal::new("test", halyard_cluster_model::model::Protocol::Internal),
                changes: vec![Change::Set {
                    object: target.clone(),
                    attribute: "AdminState".into(),
                    value: value("Shelf", "AdminState", label),
                }],
            })
            .await
            .map_err(|e| e.error)?;
        let o = self.inner.get(target).await?;
        self.inner.publish(
            "StateChanged",
            target,
            values_of(
                "StateChanged",
                &[
                    ("Component", Value::Str(target.to_string())),
                    (
                        "AdminState",
                        o.get("AdminState").cloned().unwrap_or_default(),
                    ),
                    ("OperState", o.get("OperState").cloned().unwrap_or_default()),
                    (
                        "AvailabilityState",
                        o.get("AvailabilityState").cloned().unwrap_or_default(),
                    ),
                    ("Reason", Value::Str(format!("{label} by operator"))),
                ],
            ),
        )?;
        Ok(())
    }
}

/// Overrides what the tests watch (the page sizes of walks and of reads
/// of changes) or script (jobs,
/// conflicts, alarms); the rest reach the memory model.
#[async_trait]
impl Forward for TestModel {
    fn base(&self) -> &dyn InformationModel {
        &self.inner
    }
    async fn walk(
        &self,
        class: Option<&'static ClassMeta>,
        after: u32,
        limit: usize,
    ) -> Result<Vec<ManagedObject>, ModelError> {
        self.walks.lock().unwrap().push(limit);
        self.inner.walk(class, after, limit).await
    }
    async fn changed(
        &self,
        since: u64,
        after: u32,
        limit: usize,
    ) -> Result<Option<halyard_cluster_model::port::ChangePage>, ModelError> {
        self.walks.lock().unwrap().push(limit);
        self.inner.changed(since, after, limit).await
    }
    async fn invoke(
        &self,
        target: &ObjectName,
        operation: &str,
        args: Vec<(String, Value)>,
        principal: Principal,
    ) -> Result<JobHandle, ModelError> {
        if operation == CONFLICTING {
            return Err(ModelError::Conflict {
                reason: CONFLICT_REASON.into(),
            });
        }
        let user = principal.user.clone();
        let mut job = self
            .inner
            .invoke(target, operation, args.clone(), principal)
            .await?;
        if operation == "RunDiagnostics" {
            // A multi-step job that runs until the test says otherwise.
            let (tx, rx) = tokio::sync::watch::channel(JobStatus {
                state: JobState::Running,
                steps_done: 0,
                steps_total: 2,
                detail: "taking the component off-line".into(),
                result: None,
            });
            self.diagnostics.lock().unwrap().push(tx);
            job.status = rx;
        }
        match operation {
            "Lock" => self.set_admin(target, "locked").await?,
            "Unlock" => self.set_admin(target, "unlocked").await?,
            "InjectFault" => {
                let fault = args
                    .iter()
                    .find_map(|(_, v)| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "fault".into());
                self.raise_alarm(
                    target.as_str(),
                    "major",
                    &format!("injected fault: {fault}"),
                )
                .await;
            }
            "Acknowledge" => self.acknowledge(target, &user).await?,
            _ => {}
        }
        Ok(job)
    }
}

/// A server over a fresh test model, stopped when dropped.
#[derive(Debug)]
pub struct Harness {
    pub base: String,
    pub addr: SocketAddr,
    pub model: Arc<TestModel>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), HttpError>>>,
}

pub fn config(anonymous_read: bool) -> HttpConfig {
    HttpConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        users: vec![
            UserConfig {
                name: ADMIN.0.into(),
                password: Some(ADMIN.1.into()),
                tokens: vec![],
                role: Role::Admin,
            },
            UserConfig {
                name: VIEWER.0.into(),
                password: Some(VIEWER.1.into()),
                tokens: vec![],
                role: Role::Viewer,
            },
            UserConfig {
                name: "operator".into(),
                password: None,
                tokens: vec![OPERATOR_TOKEN.into()],
                role: Role::Operator,
            },
        ],
        allow_anonymous_read: anonymous_read,
        tls: None,
        limits: Limits {
            max_body_bytes: 4096,
            ..Limits::default()
        },
        release_dir: None,
        auth_guard: Default::default(),
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_config(config(true)).await
    }

    pub async fn with_config(config: HttpConfig) -> Self {
        let model = Arc::new(TestModel::new());
        let server = HttpServer::bind(config, model.clone()).expect("bind");
        let addr = server.local_addrs()[0];
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Harness {
            base: format!("http://{addr}"),
            addr,
            model,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), HttpError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("run returns after shutdown")
            .expect("run task")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub use halyard_test_ports::free_port;

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "halyard-http-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Where test artifacts (screenshots) go: the cargo target directory.
pub fn artifact_dir() -> std::path::PathBuf {
    let d = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Polls `f` until it yields `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
