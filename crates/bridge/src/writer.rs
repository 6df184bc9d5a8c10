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
                // A redirect would turn the POST into a body-less GET: a 3xx is an answer to
                // act on (fix the URL), never something to follow.
                .redirect(reqwest::redirect::Policy::none())
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
        // Only these say "this data is bad": 400 (a malformed point or a field type conflict),
        // 413 (too large), 422 (unprocessable, InfluxDB 2/3). Anything else (5xx, 429, 408,
        // 401/403 credentials, 404 missing database or bucket, 3xx a wrong URL, a proxy's
        // 407/421/431...) is about the server or its configuration, not the points: the batch
        // is kept and retried until it is fixed, and the log says what InfluxDB answered.
        if !matches!(status.as_u16(), 400 | 413 | 422) {
            let hint = match status.as_u16() {
                401 | 403 => " (check the credentials)",
                404 => " (check the database or bucket, and the URL)",
                300..=399 => " (a redirect: check the URL, e.g. https)",
                _ => "",
            };
            return Err(WriteError::Retriable(format!(
                "InfluxDB answered {status}{hint}: {message}"
            )));
        }
        Err(WriteError::Rejected {
            status: status.as_u16(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    /// A server that answers every write with `status` (a stand-in: the point is how the
    /// bridge reads each answer, which no real InfluxDB can be made to give on demand).
    async fn answering(status: u16) -> String {
        let app = axum::Router::new().fallback(move || async move {
            let status = StatusCode::from_u16(status).unwrap();
            let mut r = axum::response::IntoResponse::into_response((status, "said so"));
            if status.is_redirection() {
                r.headers_mut().insert(
                    "location",
                    "https://elsewhere.invalid/write".parse().unwrap(),
                );
            }
            r
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn only_bad_data_answers_reject_points_everything_else_is_retried() {
        let api = InfluxApi::V1 {
            database: "insights".into(),
            retention_policy: None,
            credentials: None,
        };
        for (status, rejected) in [
            (204, None),
            (400, Some(true)),
            (413, Some(true)),
            (422, Some(true)),
            (301, Some(false)), // never followed: a POST would become a GET without a body
            (302, Some(false)),
            (401, Some(false)),
            (403, Some(false)),
            (404, Some(false)),
            (405, Some(false)),
            (407, Some(false)),
            (408, Some(false)),
            (429, Some(false)),
            (500, Some(false)),
            (503, Some(false)),
        ] {
            let writer = InfluxWriter::new(&answering(status).await, api.clone());
            let got = writer.write(b"m f=1 1\n".to_vec()).await;
            match (rejected, got) {
                (None, Ok(())) => {}
                (Some(true), Err(WriteError::Rejected { status: s, .. })) => assert_eq!(s, status),
                (Some(false), Err(WriteError::Retriable(m))) => {
                    assert!(m.contains(&status.to_string()), "{status}: {m}")
                }
                (want, got) => panic!("{status}: expected {want:?}, got {got:?}"),
            }
        }
    }
}
