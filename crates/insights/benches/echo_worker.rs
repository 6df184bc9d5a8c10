//! A trivial native algorithm for benchmarks: it speaks the ADK protocol with the standard
//! library only, so that what a benchmark measures is the runtime, not Python.
//!
//! Prints `PIPE_INIT_COMPLETE`, then answers each stdin line `{"content_type", "data"}` with
//! `{"result": <data>, "metadata": {"content_type": "json"}}` on `/tmp/algoout`. With
//! `ECHO_REPORT=1` it first reports one metric (`echo_len`) to `$ALGORITHMIA_API/v1/insights`
//! over one kept-alive HTTP/1.1 connection, as `client.report_insights` would.
//!
//! `echo_worker <fifo>` answers on `<fifo>` instead of `/tmp/algoout` (the raw baseline).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

fn main() {
    let fifo = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/algoout".to_string());
    let mut reporter = (std::env::var("ECHO_REPORT").as_deref() == Ok("1")).then(Reporter::connect);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the answer FIFO");
    println!("PIPE_INIT_COMPLETE");
    std::io::stdout().flush().unwrap();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.expect("read stdin");
        // The request is {"content_type":"json","data":<data>}: echo <data> without parsing.
        let data = line
            .find("\"data\":")
            .map(|i| line[i + 7..line.len() - 1].trim())
            .unwrap_or("null");
        if let Some(r) = reporter.as_mut() {
            r.report(data.len());
        }
        let answer = format!("{{\"result\":{data},\"metadata\":{{\"content_type\":\"json\"}}}}\n");
        out.write_all(answer.as_bytes()).expect("write the answer");
    }
}

struct Reporter {
    stream: BufReader<TcpStream>,
    host: String,
    path: String,
}

impl Reporter {
    fn connect() -> Reporter {
        let api = std::env::var("ALGORITHMIA_API").expect("ALGORITHMIA_API is set by the runtime");
        let rest = api.strip_prefix("http://").expect("an http:// URL");
        let (host, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let stream = TcpStream::connect(host).expect("connect to the insights endpoint");
        stream.set_nodelay(true).unwrap();
        Reporter {
            stream: BufReader::new(stream),
            host: host.to_string(),
            path: format!("{prefix}/v1/insights"),
        }
    }

    /// Reports once; on a connection the server closed while it was idle (its keep-alive
    /// timeout), connects again and repeats, as the official client's HTTP library does.
    fn report(&mut self, len: usize) {
        if self.try_report(len).is_err() {
            *self = Reporter::connect();
            self.try_report(len).expect("report on a new connection");
        }
    }

    fn try_report(&mut self, len: usize) -> std::io::Result<()> {
        let body = format!("[{{\"insight_key\":\"echo_len\",\"insight_value\":{len}}}]");
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.path,
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes())?;
        let mut content_length = 0;
        loop {
            let mut header = String::new();
            if self.stream.read_line(&mut header)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if header == "\r\n" {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; content_length];
        self.stream.read_exact(&mut body)
    }
}
