//! The release binary run as a server on a free loopback port, and timed GETs against
//! it over one keep-alive connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Server {
    /// The release binary, ready once `/readyz` answers 200.
    pub fn start(env: &[(&str, String)]) -> Server {
        Server::launch(Path::new(super::BINARY), env, "/readyz")
    }

    /// Any server program (the binary, or the bench's warp ceiling) on a free port,
    /// given as `HOOKLATCH_LISTEN` and `PORT`; ready once `ready_path` answers 200.
    pub fn launch(program: &Path, env: &[(&str, String)], ready_path: &str) -> Server {
        // The port is free when asked; another process could take it before the child
        // binds, in which case the child exits and the readiness wait says so.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new(program)
            .env("RUST_LOG", "warn")
            .env("HOOKLATCH_LISTEN", addr.to_string())
            .env("PORT", port.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let mut server = Server {
            pid: child.id(),
            child,
            addr,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(mut client) = Client::connect(server.addr)
                && client.get(ready_path, &[]).status == 200
            {
                return server;
            }
            server.check_alive();
            assert!(
                Instant::now() < deadline,
                "{} not ready after 120 s",
                program.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Panics with the server's log if it has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
            panic!("server exited ({status}); its log:\n{log}");
        }
    }

    /// SIGTERM, so the server drains and the SQLite writer commits what it holds.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive connection.
pub struct Client {
    addr: SocketAddr,
    conn: BufReader<TcpStream>,
}

/// An answer, with the time from the first byte sent to the last byte read.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Client {
            addr,
            conn: BufReader::new(stream),
        })
    }

    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.request("GET", path, headers, "")
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        let began = Instant::now();
        match self.exchange(&head) {
            Ok(mut answer) => {
                answer.elapsed = began.elapsed();
                if answer
                    .headers
                    .iter()
                    .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"))
                {
                    self.reconnect();
                }
                answer
            }
            Err(e) => {
                self.reconnect();
                Answer {
                    status: 0,
                    headers: vec![("error".into(), e.to_string())],
                    body: Vec::new(),
                    elapsed: began.elapsed(),
                }
            }
        }
    }

    fn reconnect(&mut self) {
        if let Ok(fresh) = Client::connect(self.addr) {
            *self = fresh;
        }
    }

    fn exchange(&mut self, request: &str) -> std::io::Result<Answer> {
        self.conn.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.conn.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            if self.conn.read_line(&mut line)? == 0 {
                break;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
                if name == "content-length" {
                    length = value.parse::<usize>().ok();
                }
                chunked |= name == "transfer-encoding" && value.contains("chunked");
                headers.push((name, value));
            }
        }
        let body = if chunked {
            self.chunked_body()?
        } else {
            let mut body = vec![0; length.unwrap_or(0)];
            self.conn.read_exact(&mut body)?;
            body
        };
        Ok(Answer {
            status,
            headers,
            body,
            elapsed: Duration::ZERO,
        })
    }

    fn chunked_body(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.conn.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            self.conn.read_exact(&mut chunk)?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}
