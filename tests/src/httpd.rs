//! A tiny static HTTP/1.1 server on 127.0.0.1 serving a directory, with fault injection for
//! pull robustness tests: drop the connection in the middle of a body, stall, answer 500,
//! serve corrupted bytes. Every request is logged so tests can check what was (re)fetched.
//!
//! One thread per connection, `Connection: close` on every response, `Range: bytes=N-`
//! honoured with 206. The listener thread ends when the [`TestServer`] is dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to requests whose path ends with a given suffix.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Send the headers and this many body bytes, then close the connection.
    DropAfter(usize),
    /// Send the headers and this many body bytes, then stall for this long.
    Stall(usize, Duration),
    /// Answer `500 Internal Server Error`.
    Status500,
    /// Serve the body with one byte flipped in the middle.
    Corrupt,
}

/// A fault rule: path suffix, the fault, and how many more times it fires (`None`: always).
#[derive(Debug, Clone)]
pub struct Rule {
    /// Matches request paths ending with this.
    pub suffix: String,
    /// The fault.
    pub fault: Fault,
    /// Remaining firings.
    pub times: Option<usize>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    log: Vec<String>,
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl TestServer {
    /// Serve `root` on a free port of 127.0.0.1.
    pub fn start(root: &Path) -> TestServer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = l.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, root) = (state.clone(), stop.clone(), root.to_path_buf());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, root) = (st.clone(), root.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &root, &st);
                });
            }
        });
        TestServer {
            url: format!("http://127.0.0.1:{port}"),
            state,
            stop,
            port,
        }
    }

    /// Add a fault rule.
    pub fn add_rule(&self, suffix: &str, fault: Fault, times: Option<usize>) {
        if let Ok(mut s) = self.state.lock() {
            s.rules.push(Rule {
                suffix: suffix.to_string(),
                fault,
                times,
            });
        }
    }

    /// Remove every fault rule.
    pub fn clear_rules(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.rules.clear();
        }
    }

    /// Request paths served so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }

    /// Forget the request log.
    pub fn clear_log(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.log.clear();
        }
    }

    /// How often each path was requested.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for p in self.log() {
            *m.entry(p).or_default() += 1;
        }
        m
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn handle(conn: TcpStream, root: &Path, st: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut range: Option<u64> = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            range = v.trim().trim_end_matches('-').parse().ok();
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let fault = {
        let mut s = st.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        s.log.push(path.clone());
        let mut hit = None;
        for rule in s.rules.iter_mut() {
            if path.ends_with(&rule.suffix) && rule.times != Some(0) {
                if let Some(t) = rule.times.as_mut() {
                    *t -= 1;
                }
                hit = Some(rule.fault.clone());
                break;
            }
        }
        hit
    };
    let mut w = conn;
    if matches!(fault, Some(Fault::Status500)) {
        return w.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    let rel = path.trim_start_matches('/');
    let file: PathBuf = root.join(rel);
    let mut data = match std::fs::read(&file) {
        Ok(d) if !rel.split('/').any(|c| c == "..") => d,
        _ => {
            return w.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    };
    if matches!(fault, Some(Fault::Corrupt)) && !data.is_empty() {
        let mid = data.len() / 2;
        data[mid] ^= 0x55;
    }
    let (status, body) = match range {
        Some(start) if (start as usize) <= data.len() && start > 0 => {
            ("206 Partial Content", data[start as usize..].to_vec())
        }
        _ => ("200 OK", data),
    };
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    match fault {
        Some(Fault::DropAfter(n)) => {
            w.write_all(&body[..n.min(body.len())])?;
            w.flush()?;
            let _ = w.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        Some(Fault::Stall(n, d)) => {
            w.write_all(&body[..n.min(body.len())])?;
            w.flush()?;
            std::thread::sleep(d);
            Ok(())
        }
        _ => w.write_all(&body),
    }
}

/// A running `ostree-trivial-httpd` (the packaged static server of ostree-tests) serving a
/// directory; killed on drop.
#[derive(Debug)]
pub struct TrivialHttpd {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: std::process::Child,
}

/// Path of the packaged trivial-httpd.
pub const TRIVIAL_HTTPD: &str = "/usr/libexec/libostree/ostree-trivial-httpd";

impl TrivialHttpd {
    /// Serve `dir`, or `None` if the server is not installed.
    pub fn start(dir: &Path) -> Option<TrivialHttpd> {
        if !Path::new(TRIVIAL_HTTPD).exists() {
            return None;
        }
        let portfile = dir.join(".port");
        let _ = std::fs::remove_file(&portfile);
        let child = std::process::Command::new(TRIVIAL_HTTPD)
            .arg("-p")
            .arg(&portfile)
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..200 {
            if let Ok(p) = std::fs::read_to_string(&portfile)
                && let Ok(port) = p.trim().parse::<u16>()
            {
                return Some(TrivialHttpd {
                    url: format!("http://127.0.0.1:{port}"),
                    child,
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

impl Drop for TrivialHttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
