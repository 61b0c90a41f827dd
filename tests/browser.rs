//! The console in a real browser: headless Chromium driven through WebDriver
//! (chromedriver), against a real server on a loopback socket.
//!
//! Without `chromium` and `chromedriver` the test says SKIPPED on the terminal; with
//! `CI=true` it fails instead (`.ci/run` installs both). With
//! `HOOKLATCH_WRITE_SCREENSHOTS=1` it also writes the README's screenshots to `docs/`.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Backend, TestDb, TestServer, post, sale};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The first of `names` found on PATH (or an absolute path that exists).
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        let direct = PathBuf::from(name);
        if direct.is_absolute() && direct.exists() {
            return Some(direct);
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(binary: &PathBuf) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, chromium: &PathBuf) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900", "--no-first-run",
                     "--disable-background-networking"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// The text of an element, waiting for it to appear (a click that navigates returns
/// before the next page has loaded).
async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn click(client: &Client, id: &str) {
    let element = client.find(Locator::Id(id)).await;
    element
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn type_into(client: &Client, id: &str, text: &str) {
    let element = client.find(Locator::Id(id)).await;
    element
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits for the page a click led to.
async fn wait_for(client: &Client, id: &str) {
    let found = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id(id))
        .await;
    found.unwrap_or_else(|e| panic!("#{id}: {e}"));
}

/// Polls the address until it contains `needle` (a form's GET has no element of its own
/// to wait for).
async fn wait_for_path(client: &Client, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path_of(client).await.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "the address never contained {needle}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn path_of(client: &Client) -> String {
    let url = client.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Every resource the page loaded came from the server itself.
async fn assert_no_external_requests(client: &Client, base: &str) {
    let names = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)",
            vec![],
        )
        .await
        .unwrap();
    let names = names.as_array().unwrap();
    assert!(!names.is_empty(), "the stylesheet is a resource");
    for name in names {
        assert!(
            name.as_str().unwrap().starts_with(base),
            "external request: {name}"
        );
    }
}

async fn screenshot(client: &Client, name: &str) {
    if std::env::var("HOOKLATCH_WRITE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let png = client.screenshot().await.unwrap();
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, png).unwrap();
    }
}

#[test]
fn console_in_headless_chromium() {
    let (Some(chromium), Some(chromedriver)) = (
        find(&["chromium", "chromium-browser", "google-chrome"]),
        find(&["chromedriver"]),
    ) else {
        if in_ci() {
            panic!("CI=true but chromium and chromedriver are not installed");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (no chromium/chromedriver; apt-get install chromium chromium-driver): browser::console_in_headless_chromium"
        );
        return;
    };
    let db = TestDb::fresh(Backend::Sqlite, "browser").expect("SQLite");
    let driver = Driver::start(&chromedriver);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = db.admin_app();
        let server = TestServer::start(app.clone()).await;
        let base = format!("http://{}", server.addr);

        // A history worth looking at: sales with exact cents, other providers, a retry,
        // a conflict and a refused delivery.
        for (n, commission) in ["0.10", "0.20", "0.30", "12.50", "7.25"].iter().enumerate() {
            let body = sale(&format!("sale_{n}"), commission)
                .replace(r#""tracking_id""#, r#""currency":"USD","tracking_id""#);
            post(&app, "/webhooks/refersion", &[], &body).await;
        }
        for n in 0..14 {
            let body = format!(
                r#"{{"id":"evt_{n:02}","type":"charge.succeeded","amount":{}}}"#,
                1000 + n
            );
            post(&app, "/webhooks/stripe", &[], &body).await;
        }
        // Delivered twice: the second is a retry, answered as a duplicate.
        let shopify = [
            ("X-Shopify-Event-Id", "shp-1"),
            ("X-Shopify-Topic", "orders/create"),
        ];
        for _ in 0..2 {
            let order = r#"{"id":1,"total_price":"19.99"}"#;
            post(&app, "/webhooks/shopify", &shopify, order).await;
        }
        post(&app, "/webhooks/refersion", &[], &sale("sale_0", "0.99")).await;
        post(
            &app,
            "/webhooks/refersion",
            &[],
            r#"{"event_type":"sale","event_id":"bad"}"#,
        )
        .await;

        let client = browser(&driver, &chromium).await;
        // In its own task, so the browser session is closed even when an assertion
        // fails (a leaked session would keep a Chromium running).
        let walk = tokio::spawn({
            let client = client.clone();
            async move { walk_the_console(&client, &base).await }
        })
        .await;
        let _ = client.close().await;
        server.stop().await;
        if let Err(failure) = walk {
            std::panic::resume_unwind(failure.into_panic());
        }
    });
}

async fn walk_the_console(client: &Client, base: &str) {
    // Signed out, the console sends a person to the login form.
    client.goto(&format!("{base}/admin/")).await.unwrap();
    assert_eq!(path_of(client).await, "/admin/login");

    // Refused, then accepted; the token never appears in a URL.
    type_into(client, "token", "not-the-admin-token").await;
    click(client, "sign-in").await;
    assert!(
        text_of(client, "#login-error")
            .await
            .contains("not the admin token")
    );
    assert!(client.get_all_cookies().await.unwrap().is_empty());
    type_into(client, "token", ADMIN_TOKEN).await;
    click(client, "sign-in").await;
    wait_for(client, "sources").await;
    assert_eq!(path_of(client).await, "/admin/");
    assert!(
        !client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains(ADMIN_TOKEN)
    );

    // The session cookie's flags, as the browser stored them.
    let cookies = client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "hooklatch_session")
        .expect("session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        session.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    assert!(session.expires().is_some(), "the session cookie expires");
    assert_eq!(session.path(), Some("/admin"));

    let sources = text_of(client, "#sources").await;
    assert!(
        sources.contains("stripe") && sources.contains("refersion"),
        "{sources}"
    );
    assert_no_external_requests(client, base).await;
    screenshot(client, "console-overview.png").await;

    // The event list through its form: a filter and paging.
    client.goto(&format!("{base}/admin/events")).await.unwrap();
    type_into(client, "source", "stripe").await;
    client
        .find(Locator::Id("limit"))
        .await
        .unwrap()
        .select_by_value("10")
        .await
        .unwrap();
    click(client, "apply-filters").await;
    // The unfiltered list also has #events: wait for the filtered page's address.
    wait_for_path(client, "source=stripe").await;
    wait_for(client, "events").await;
    let first_page = event_ids(client).await;
    assert_eq!(first_page.len(), 10);
    assert_eq!(first_page[0], "evt_13", "newest first");
    assert!(first_page.iter().all(|id| id.starts_with("evt_")));
    click(client, "next-page").await;
    wait_for(client, "first-page").await;
    let second_page = event_ids(client).await;
    assert_eq!(second_page, ["evt_03", "evt_02", "evt_01", "evt_00"]);
    assert!(
        client.find(Locator::Id("next-page")).await.is_err(),
        "the last page"
    );
    let form_source = client
        .find(Locator::Id("source"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        form_source.as_deref(),
        Some("stripe"),
        "the form keeps its filter"
    );

    // One event: payload pretty-printed, deliveries, conflicts, conversion.
    client
        .goto(&format!(
            "{base}/admin/events?source=refersion&event_id=sale_0"
        ))
        .await
        .unwrap();
    client
        .find(Locator::Css("#events a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(client, "payload").await;
    let payload = text_of(client, "#payload").await;
    assert!(payload.contains("\"commission_amount\": 0.10"), "{payload}");
    assert!(payload.lines().count() > 3, "pretty-printed: {payload}");
    assert_eq!(
        text_of(client, "#deliveries")
            .await
            .split_whitespace()
            .next(),
        Some("2")
    );
    assert!(
        client.source().await.unwrap().contains("0.99"),
        "the conflicting delivery is shown"
    );
    assert!(text_of(client, "#conversion").await.contains("0.10"));
    assert_no_external_requests(client, base).await;
    screenshot(client, "console-event.png").await;

    // Conversions with the exact summary.
    client
        .goto(&format!("{base}/admin/conversions"))
        .await
        .unwrap();
    let summary = text_of(client, "#summary").await;
    assert!(
        summary.contains("USD") && summary.contains("20.35"),
        "{summary}"
    );

    client
        .goto(&format!("{base}/admin/rejections"))
        .await
        .unwrap();
    assert!(
        text_of(client, "#rejections")
            .await
            .contains("invalid_payload")
    );

    // Signing out ends the session.
    click(client, "sign-out").await;
    wait_for(client, "token").await;
    assert_eq!(path_of(client).await, "/admin/login");
    client.goto(&format!("{base}/admin/events")).await.unwrap();
    assert_eq!(path_of(client).await, "/admin/login");
}

async fn event_ids(client: &Client) -> Vec<String> {
    let mut ids = Vec::new();
    for link in client
        .find_all(Locator::Css("#events tbody td.mono a"))
        .await
        .unwrap()
    {
        ids.push(link.text().await.unwrap());
    }
    ids
}
