//! The merchant's app, as forwarding tests need it: a local HTTP server that records
//! every request it receives and answers as the test scripts it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

/// How the app answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// A status with a body and, when set, a `Retry-After` header.
    Reply {
        status: u16,
        body: &'static str,
        retry_after: Option<&'static str>,
    },
    /// Holds the request open until [`TestApp::release`].
    Hang,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }
}

#[derive(Default)]
struct AppState {
    received: Mutex<Vec<Received>>,
    /// Answers in order; when empty, `otherwise`.
    script: Mutex<VecDeque<Answer>>,
    otherwise: Mutex<Option<u16>>,
    /// When set, the answer once the script is empty (instead of `otherwise`).
    otherwise_answer: Mutex<Option<Answer>>,
    hanging: Mutex<usize>,
    release: tokio::sync::Notify,
}

/// A local HTTP app recording every request it receives.
pub struct TestApp {
    pub addr: SocketAddr,
    state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> TestApp {
        let state = Arc::new(AppState::default());
        *state.otherwise.lock().unwrap() = Some(200);
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind app");
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        let route = warp::post()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(move |headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move {
                    state.received.lock().unwrap().push(Received {
                        headers,
                        body,
                        at: std::time::Instant::now(),
                    });
                    let next = state.script.lock().unwrap().pop_front();
                    let answer = next
                        .or_else(|| *state.otherwise_answer.lock().unwrap())
                        .unwrap_or_else(|| {
                            Answer::Status(state.otherwise.lock().unwrap().unwrap_or(200))
                        });
                    let (status, body, retry_after) = match answer {
                        Answer::Status(status) => (status, "{}", None),
                        Answer::Reply {
                            status,
                            body,
                            retry_after,
                        } => (status, body, retry_after),
                        Answer::Hang => {
                            let released = state.release.notified();
                            *state.hanging.lock().unwrap() += 1;
                            released.await;
                            *state.hanging.lock().unwrap() -= 1;
                            (200, "{}", None)
                        }
                    };
                    let mut reply = warp::http::Response::builder()
                        .status(StatusCode::from_u16(status).unwrap());
                    if let Some(value) = retry_after {
                        reply = reply.header("retry-after", value);
                    }
                    reply.body(body.to_owned()).unwrap()
                }
            });
        let task = tokio::spawn(warp::serve(route).incoming(listener).run());
        TestApp { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    pub fn script(&self, answers: &[Answer]) {
        self.state.script.lock().unwrap().extend(answers);
    }

    pub fn otherwise(&self, status: u16) {
        *self.state.otherwise_answer.lock().unwrap() = None;
        *self.state.otherwise.lock().unwrap() = Some(status);
    }

    /// Answers `answer` once the script is empty.
    pub fn otherwise_answer(&self, answer: Answer) {
        *self.state.otherwise_answer.lock().unwrap() = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn hanging(&self) -> usize {
        *self.state.hanging.lock().unwrap()
    }

    pub fn release(&self) {
        self.state.release.notify_waiters();
    }

    /// Requests received for one `webhook-id`.
    pub fn for_id(&self, webhook_id: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.header("webhook-id") == webhook_id)
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}
