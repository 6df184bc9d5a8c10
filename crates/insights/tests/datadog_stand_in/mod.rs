//! A local stand-in for Datadog's intake (no real Datadog is reachable from here): an HTTP
//! server on 127.0.0.1 answering `POST /api/v2/series` and `GET /api/v1/validate` as the API
//! reference documents them, recording every request (path, headers, the body decoded from
//! `Content-Encoding: zstd1`), and answering what the test scripts (202 by default).
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;

/// One request as the intake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub compressed_len: usize,
    /// The body decoded (zstd) and parsed; `Value::Null` if it did not decode.
    pub body: Value,
    /// What the intake answered.
    pub status: u16,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: "{}".into(),
        }
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Answer>,
    /// Answer 413 to bodies with more series than this.
    max_series: Option<usize>,
    /// The API key `/api/v1/validate` accepts.
    valid_key: String,
}

#[derive(Clone)]
pub struct Intake {
    inner: Arc<Mutex<Inner>>,
    count: watch::Sender<usize>,
    pub addr: SocketAddr,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Intake {
    /// Starts on a free port.
    pub async fn start(valid_key: &str) -> Intake {
        Self::start_on("127.0.0.1:0".parse().unwrap(), valid_key).await
    }

    /// Starts on `addr` (a port a test reserved to start the intake late: "down, then up").
    pub async fn start_on(addr: SocketAddr, valid_key: &str) -> Intake {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            valid_key: valid_key.into(),
            ..Default::default()
        }));
        let (count, _) = watch::channel(0);
        let app = Router::new()
            .route("/api/v2/series", post(series))
            .route("/api/v1/validate", get(validate))
            .with_state((inner.clone(), count.clone()));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Intake {
            inner,
            count,
            addr,
            task: Arc::new(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next answers, in order (then 202 again).
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().script.extend(answers);
    }

    pub fn refuse_more_series_than(&self, n: usize) {
        self.inner.lock().unwrap().max_series = Some(n);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The series of every request answered 202.
    pub fn accepted_series(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.status == 202)
            .flat_map(|r| r.body["series"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits (on the intake's own count, no polling) until `n` requests came, or fails after
    /// `secs`.
    pub async fn wait_requests(&self, n: usize, secs: u64) -> Vec<Received> {
        let mut rx = self.count.subscribe();
        let got = tokio::time::timeout(Duration::from_secs(secs), rx.wait_for(|c| *c >= n)).await;
        assert!(
            got.is_ok(),
            "expected {n} requests at the intake, got {}",
            self.received().len()
        );
        self.received()
    }

    /// Waits until the 202 answers carried `n` series.
    pub async fn wait_accepted_series(&self, n: usize, secs: u64) -> Vec<Value> {
        let mut rx = self.count.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.accepted_series();
            if got.len() >= n {
                return got;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "expected {n} accepted series, got {}",
                got.len()
            );
            let _ = tokio::time::timeout(left, rx.changed()).await;
        }
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

type St = (Arc<Mutex<Inner>>, watch::Sender<usize>);

async fn series(State((inner, count)): State<St>, headers: HeaderMap, body: Bytes) -> Response {
    let decoded = if headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        == Some("zstd1")
    {
        zstd::bulk::decompress(&body, 6 << 20).ok()
    } else {
        Some(body.to_vec())
    };
    let json: Value = decoded
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    let answer = {
        let mut inner = inner.lock().unwrap();
        let n = json["series"].as_array().map_or(0, Vec::len);
        let answer = if let Some(a) = inner.script.pop_front() {
            a
        } else if inner.max_series.is_some_and(|m| n > m) {
            Answer::status(413)
        } else if json.is_null() {
            Answer {
                status: 400,
                headers: vec![],
                body: r#"{"errors":["Payload is not in the expected format"]}"#.into(),
            }
        } else {
            Answer {
                status: 202,
                headers: vec![],
                body: r#"{"errors":[]}"#.into(),
            }
        };
        inner.received.push(Received {
            at: Instant::now(),
            path: "/api/v2/series".into(),
            headers: headers.clone(),
            compressed_len: body.len(),
            body: json,
            status: answer.status,
        });
        count.send_replace(inner.received.len());
        answer
    };
    let mut response = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    for (k, v) in answer.headers {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

async fn validate(State((inner, _)): State<St>, headers: HeaderMap) -> Response {
    let key = headers
        .get("dd-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if key == inner.lock().unwrap().valid_key {
        axum::Json(json!({"valid": true})).into_response()
    } else {
        (StatusCode::FORBIDDEN, r#"{"errors":["Forbidden"]}"#).into_response()
    }
}
