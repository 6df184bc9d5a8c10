//! Kafka delivery against a real Kafka-protocol broker: tansu (started here, from the binary
//! that `scripts/test` builds and caches), in plaintext, and with SASL/SCRAM-SHA-256 and -512
//! behind stunnel for TLS, with a CA and server certificates this test generates. The broker is
//! read back by an independent rdkafka consumer.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestServer, consume};
use insights_testkit::{Proc, free_port, tansu_bin, tansu_ok, wait_for_port};
use rdkafka::ClientConfig;
use reqwest::Method;
use serde_json::{Value, json};

const TOPIC: &str = "insights";

fn spawn(mut cmd: Command) -> Proc {
    Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    )
}

fn tansu(args: &[&str]) -> Command {
    let mut c = Command::new(tansu_bin());
    c.args(args);
    c
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate signed by it for `host` (with `127.0.0.1` too).
fn certificates(dir: &Path, name: &str, host: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} CA"),
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={host}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName=DNS:{host},IP:127.0.0.1\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{name}-ca.pem"),
            "-CAkey",
            &format!("{name}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// stunnel terminating TLS on `accept` with `name`'s certificate, forwarding to `connect`.
fn stunnel(dir: &Path, name: &str, accept: u16, connect: u16) -> Proc {
    let conf = dir.join(format!("{name}-stunnel.conf"));
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\ncert = {cert}\nkey = {key}\n",
            cert = dir.join(format!("{name}.pem")).display(),
            key = dir.join(format!("{name}.key")).display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new("stunnel");
    cmd.arg(&conf);
    let p = spawn(cmd);
    wait_for_port(accept);
    p
}

struct ScramBroker {
    _tansu: Proc,
    _tls: Proc,
    _other_host_tls: Proc,
    dir: tempfile::TempDir,
    /// TLS port whose certificate is for `localhost`.
    tls_port: u16,
    /// TLS port whose certificate is for another host name.
    other_host_port: u16,
}

const USER: &str = "insights";
const PASSWORD: &str = "correct horse battery staple";

/// tansu with SQLite storage and SCRAM users, behind stunnel. Users are created by a first
/// start without authentication; the second start requires it.
fn scram_broker() -> ScramBroker {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tls_port = free_port();
    let other_host_port = free_port();
    // tansu resolves a sqlite:// path against its working directory.
    let db = "sqlite://tansu.db".to_string();
    let url = format!("tcp://127.0.0.1:{port}");
    let broker = format!("tcp://127.0.0.1:{port}");
    {
        let mut setup = tansu(&[
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            &db,
        ]);
        setup.current_dir(dir.path());
        let _setup = spawn(setup);
        wait_for_port(port);
        for mechanism in ["scram256", "scram512"] {
            tansu_ok(&[
                "user",
                "create",
                "--broker",
                &broker,
                "--mechanism",
                mechanism,
                USER,
                PASSWORD,
            ]);
        }
        tansu_ok(&[
            "topic",
            "create",
            TOPIC,
            "--partitions",
            "3",
            "--broker",
            &broker,
        ]);
    }
    let advertised = format!("tcp://localhost:{tls_port}");
    let mut broker_cmd = tansu(&[
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &advertised,
        "--storage-engine",
        &db,
        "--authentication",
    ]);
    broker_cmd.current_dir(dir.path());
    let t = spawn(broker_cmd);
    wait_for_port(port);
    certificates(dir.path(), "server", "localhost");
    certificates(dir.path(), "other", "kafka.example.org");
    let tls = stunnel(dir.path(), "server", tls_port, port);
    let other = stunnel(dir.path(), "other", other_host_port, port);
    ScramBroker {
        _tansu: t,
        _tls: tls,
        _other_host_tls: other,
        dir,
        tls_port,
        other_host_port,
    }
}

impl ScramBroker {
    fn ca(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}-ca.pem"))).unwrap()
    }

    fn connection(&self, mechanism: &str, password: &str, ca: &str, port: u16) -> Value {
        json!({
            "topic": TOPIC,
            "brokers": format!("localhost:{port}"),
            "connection_type": "sasl_scram_tls",
            "sasl_mechanism": mechanism,
            "username": USER,
            "password": password,
            "ca_certificate": ca,
        })
    }
}

async fn verdict(t: &TestServer, connection: Value) -> Value {
    let (s, v) = t
        .admin(
            Method::POST,
            "/v1/admin/insights/connection/test",
            Some(connection),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_delivery_to_tansu_matches_the_embedded_store_byte_for_byte() {
    let (_broker, brokers) = insights_testkit::tansu(TOPIC);
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "plain", 2, true).await;
    let key = t.new_key().await;
    let (s, v) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(json!({"topic": TOPIC, "brokers": brokers, "connection_type": "plaintext"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    t.calls(&key, "acme/plain", 15).await;
    let status = t
        .wait_kafka("delivered", |s| s["delivered"] == 15 && s["waiting"] == 0)
        .await;
    assert_eq!(status["state"], "connected");
    let v = verdict(
        &t,
        json!({"topic": TOPIC, "brokers": brokers, "connection_type": "plaintext"}),
    )
    .await;
    assert_eq!(v["code"], "ok", "{v}");

    let raw = t.raw_payloads("algorithm=acme/plain&limit=100").await;
    let messages = consume(
        ClientConfig::new().set("bootstrap.servers", &brokers),
        TOPIC,
        15,
    );
    assert_eq!(messages.len(), 15);
    for (_, m) in &messages {
        assert!(
            raw.contains(m.as_str()),
            "not byte-for-byte in the store: {m}"
        );
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_scram_over_tls_delivers_and_bad_credentials_or_certificates_get_clear_verdicts() {
    let b = scram_broker();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "secure", 1, true).await;
    let key = t.new_key().await;
    let ca = b.ca("server");

    // The verdicts, one per way of getting it wrong.
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let v = verdict(&t, b.connection(mechanism, PASSWORD, &ca, b.tls_port)).await;
        assert_eq!(v["code"], "ok", "{mechanism}: {v}");
    }
    let v = verdict(
        &t,
        b.connection("SCRAM-SHA-512", "wrong password", &ca, b.tls_port),
    )
    .await;
    assert_eq!(v["code"], "authentication_failed", "{v}");
    let v = verdict(
        &t,
        b.connection("SCRAM-SHA-512", PASSWORD, &b.ca("other"), b.tls_port),
    )
    .await;
    assert_eq!(v["code"], "tls_failed", "wrong CA: {v}");
    let v = verdict(
        &t,
        b.connection("SCRAM-SHA-512", PASSWORD, &b.ca("other"), b.other_host_port),
    )
    .await;
    assert_eq!(v["code"], "tls_failed", "certificate for another host: {v}");
    let v = verdict(
        &t,
        b.connection("SCRAM-SHA-512", PASSWORD, &ca, b.other_host_port),
    )
    .await;
    assert_eq!(
        v["code"], "tls_failed",
        "certificate for another host, trusted CA: {v}"
    );

    // A wrong password delivers nothing and says why.
    let (s, _) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(b.connection("SCRAM-SHA-512", "wrong password", &ca, b.tls_port)),
        )
        .await;
    assert_eq!(s, 200);
    t.calls(&key, "acme/secure", 3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = t
            .admin(Method::GET, "/v1/admin/insights/connection", None)
            .await;
        let st = &body["status"];
        if st["state"] == "failing" {
            assert_eq!(st["delivered"], 0);
            assert!(
                st["last_error"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .contains("auth"),
                "{st}"
            );
            assert!(
                !body.to_string().contains("wrong password"),
                "the password is never shown"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Then each mechanism delivers; the waiting payloads go through the new connection.
    let mut delivered = 0;
    for (mechanism, n) in [("SCRAM-SHA-256", 4), ("SCRAM-SHA-512", 5)] {
        let (s, _) = t
            .admin(
                Method::PUT,
                "/v1/admin/insights/connection",
                Some(b.connection(mechanism, PASSWORD, &ca, b.tls_port)),
            )
            .await;
        assert_eq!(s, 200);
        t.calls(&key, "acme/secure", n).await;
        delivered += n as u64;
        if delivered == 4 {
            delivered += 3; // the three that waited through the wrong password
        }
        t.wait_kafka("delivered", |s| {
            s["delivered"] == delivered && s["waiting"] == 0
        })
        .await;
    }
    let messages = consume(
        ClientConfig::new()
            .set("bootstrap.servers", format!("localhost:{}", b.tls_port))
            .set("security.protocol", "sasl_ssl")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", USER)
            .set("sasl.password", PASSWORD)
            .set("ssl.ca.pem", &ca),
        TOPIC,
        12,
    );
    assert_eq!(messages.len(), 12);
    t.stop().await;
}
