//! Writing line protocol to InfluxDB: the v1, v2 and v3 write APIs, and what their answers mean
//! for the batch (written, retry later, or some point refused).

use std::time::Duration;

use crate::config::InfluxApi;

/// What a write came to.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// InfluxDB is unreachable, overloaded (5xx, 429) or slow: try the same batch again.
    Retriable(String),
    /// InfluxDB refused the batch (4xx): some point in it is bad.
    Rejected { status: u16, message: String },
}

pub(crate) struct InfluxWriter {
    http: reqwest::Client,
    url: String,
    api: InfluxApi,
}

impl InfluxWriter {
    pub(crate) fn new(url: &str, api: InfluxApi) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds"),
            url: url.to_string(),
            api,
        }
    }

    pub(crate) async fn write(&self, body: Vec<u8>) -> Result<(), WriteError> {
        let request = match &self.api {
            InfluxApi::V1 {
                database,
                retention_policy,
                credentials,
            } => {
                let mut query = vec![("db", database.as_str()), ("precision", "ns")];
                if let Some(rp) = retention_policy {
                    query.push(("rp", rp));
                }
                let mut r = self.http.post(format!("{}/write", self.url)).query(&query);
                if let Some((user, password)) = credentials {
                    r = r.basic_auth(user, Some(password.expose()));
                }
                r
            }
            InfluxApi::V2 { org, bucket, token } => self
                .http
                .post(format!("{}/api/v2/write", self.url))
                .query(&[
                    ("org", org.as_str()),
                    ("bucket", bucket),
                    ("precision", "ns"),
                ])
                .header("Authorization", format!("Token {}", token.expose())),
            InfluxApi::V3 { database, token } => {
                let mut r = self
                    .http
                    .post(format!("{}/api/v3/write_lp", self.url))
                    .query(&[("db", database.as_str()), ("precision", "nanosecond")]);
                if let Some(t) = token {
                    r = r.bearer_auth(t.expose());
                }
                r
            }
        };
        let response = request
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| WriteError::Retriable(format!("InfluxDB did not answer: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let message = response.text().await.unwrap_or_default();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(WriteError::Retriable(format!(
                "InfluxDB answered {status}: {message}"
            )));
        }
        if matches!(status.as_u16(), 401 | 403 | 404) {
            // Not a bad point: wrong credentials or a missing database. Retrying keeps the
            // data until the operator fixes it; the log says what to fix.
            return Err(WriteError::Retriable(format!(
                "InfluxDB answered {status} (check credentials, database/bucket): {message}"
            )));
        }
        Err(WriteError::Rejected {
            status: status.as_u16(),
            message,
        })
    }
}
