//! A SASL/SCRAM broker over TLS: tansu with SQLite storage and SCRAM users (SHA-256 and
//! SHA-512), behind stunnel with a CA and server certificates generated here, one for
//! `localhost` and one for another host name (to test host-name checks).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::{Proc, free_port, tansu_bin, tansu_ok, wait_for_port};

/// The topics the broker has.
pub const TOPIC: &str = "insights";
pub const OTHER_TOPIC: &str = "insights-other";

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

pub struct ScramBroker {
    _tansu: Proc,
    _tls: Proc,
    _other_host_tls: Proc,
    dir: tempfile::TempDir,
    /// TLS port whose certificate is for `localhost`.
    pub tls_port: u16,
    /// TLS port whose certificate is for another host name.
    pub other_host_port: u16,
}

pub const USER: &str = "insights";
pub const PASSWORD: &str = "correct horse battery staple";

/// tansu with SQLite storage and SCRAM users, behind stunnel. Users are created by a first
/// start without authentication; the second start requires it.
pub fn scram_broker() -> ScramBroker {
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
        for topic in [TOPIC, OTHER_TOPIC] {
            tansu_ok(&[
                "topic",
                "create",
                topic,
                "--partitions",
                "3",
                "--broker",
                &broker,
            ]);
        }
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
    /// The CA certificate (PEM) of `server` (signed `localhost`) or `other` (another host).
    pub fn ca(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}-ca.pem"))).unwrap()
    }

    /// A connection request for the admin API, to `port` of this broker.
    pub fn connection(&self, mechanism: &str, password: &str, ca: &str, port: u16) -> Value {
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
