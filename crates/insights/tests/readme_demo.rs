//! The README's first command, as a newcomer types it: from the root of a copy of the repository,
//! with no flags and no `INSIGHTS_*` variable, `serve --demo`; then the `curl` line it prints,
//! run as printed; then the same again on the data directory the first run left. Real worker
//! processes (the bundled Python example), the default data directory `./insights-data` and the
//! default address `127.0.0.1:8080`, because that is what a newcomer gets.
//!
//! Regression: `worker could not start … starting python3 -u src/Algorithm.py: No such file or
//! directory` with the default (relative) data directory, while every test that passed an
//! absolute temporary directory succeeded (issue 9).

use std::io::{BufRead, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Kills the server if the test ends early; the normal path stops it with SIGTERM.
struct Server {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The insights command as a newcomer's shell would run it: the working directory, the
/// environment without any `INSIGHTS_*` variable, and the given arguments only.
fn newcomer(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_insights"));
    cmd.args(args).current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INSIGHTS_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A copy of the repository's tracked files (what a fresh clone holds), in a temporary
/// directory that is not under the checkout.
fn fresh_copy() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("git")
        .args(["ls-files", "-z", "--", "examples", "README.md"])
        .current_dir(&root)
        .output()
        .expect("git lists the repository's files");
    assert!(out.status.success(), "git ls-files failed");
    let copy = tempfile::tempdir().unwrap();
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let target = copy.path().join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(root.join(name), &target).unwrap();
    }
    copy
}

/// Starts `serve --demo` in `dir` and returns the server and every `curl` command it printed
/// (each with all its lines, continuation backslashes included), in order.
fn serve_demo(dir: &Path) -> (Server, Vec<String>) {
    let mut child = newcomer(dir, &["serve", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the insights binary starts");
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let mut commands: Vec<String> = Vec::new();
        let mut open = false;
        for line in lines.by_ref() {
            let line = line.trim().to_string();
            if line.starts_with("Press Ctrl-C") {
                break;
            }
            if open {
                let c = commands.last_mut().expect("a command is open");
                c.push('\n');
                c.push_str(&line);
            } else if line.starts_with("curl ") {
                commands.push(line.clone());
            } else {
                continue;
            }
            open = line.ends_with('\\');
        }
        let _ = tx.send(commands);
        lines.for_each(drop);
    });
    let server = Server { child, stderr };
    // A guard against hanging forever, not a measure: the demo prints within seconds.
    match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(commands) if !commands.is_empty() => (server, commands),
        outcome => {
            let mut server = server;
            let _ = server.child.kill();
            let status = server.child.wait().unwrap();
            let stderr = std::mem::replace(&mut server.stderr, std::thread::spawn(String::new));
            panic!(
                "the demo printed no curl line ({outcome:?}, {status}); its log:\n{}",
                stderr.join().unwrap()
            );
        }
    }
}

/// Runs the printed command as printed, with the shell, from the same directory.
fn run_printed(dir: &Path, command: &str) -> Value {
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .output()
        .expect("sh runs the printed command");
    assert!(out.status.success(), "{command} failed: {out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{command} did not answer JSON ({e}): {out:?}"))
}

fn stop(mut server: Server) -> String {
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = server.child.wait().unwrap();
    let stderr = std::mem::replace(&mut server.stderr, std::thread::spawn(String::new));
    let log = stderr.join().unwrap();
    assert!(
        status.success(),
        "the server did not stop cleanly ({status}):\n{log}"
    );
    log
}

#[test]
fn the_readme_demo_works_as_typed_from_a_fresh_copy_and_again_on_its_data() {
    let copy = fresh_copy();
    for run in ["first", "second"] {
        let (server, commands) = serve_demo(copy.path());
        let call = commands
            .iter()
            .find(|c| c.starts_with("curl -s -X POST"))
            .expect("a curl line that calls the algorithm");
        let answer = run_printed(copy.path(), call);
        let risk = &answer["result"]["risk_score"];
        assert!(
            risk.is_number(),
            "{run} run: the printed call answered {answer} (no result.risk_score)"
        );
        // The printed series query answers the demo's points (the three first calls at least,
        // the one just made, and whatever the gentle caller added).
        let series = commands
            .iter()
            .find(|c| c.contains("/v1/admin/insights/series?"))
            .expect("a curl line that queries the series");
        // The series are written by their own sink, just after the calls: the query is run
        // again (as a user would refresh) until they are there.
        let mut count = 0;
        let mut answer = Value::Null;
        for _ in 0..200 {
            answer = run_printed(copy.path(), series);
            let points = answer["series"][0]["points"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            count = points
                .iter()
                .map(|p| p["count"].as_u64().unwrap_or(0))
                .sum();
            if count >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(
            count >= 3,
            "{run} run: the printed series query answered {answer}"
        );
        let log = stop(server);
        assert!(!log.contains("ERROR"), "{run} run logged an error:\n{log}");
    }
    // The defaults, relative to where the newcomer stood: nothing was written elsewhere.
    let data = copy.path().join("insights-data");
    for file in ["insights.sqlite", "admin-token", "demo-api-key"] {
        assert!(data.join(file).is_file(), "{file} is in ./insights-data");
    }
}

#[test]
fn an_algorithm_that_cannot_start_says_which_program_is_missing() {
    let copy = fresh_copy();
    let empty = tempfile::tempdir().unwrap();
    let out = newcomer(copy.path(), &["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("PATH", empty.path())
        .stdout(Stdio::null())
        .output()
        .expect("the insights binary runs");
    assert!(
        !out.status.success(),
        "the demo cannot succeed without python3"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`python3` was not found in PATH")
            && stderr.contains("give its full path in source.command"),
        "{stderr}"
    );
}

#[test]
fn a_taken_port_is_named_with_the_flag_and_variable_that_choose_another() {
    let copy = fresh_copy();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = newcomer(copy.path(), &["serve", "--demo", "--listen", &addr])
        .stdout(Stdio::null())
        .output()
        .expect("the insights binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}"))
            && stderr.contains("already listening")
            && stderr.contains("--listen")
            && stderr.contains("INSIGHTS_LISTEN"),
        "{stderr}"
    );
}
