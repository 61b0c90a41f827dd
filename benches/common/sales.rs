//! New Refersion sales prepared as the HTTP layer hands them to the store, for the benches
//! that call the store without HTTP (`pg_client`, `sqlite_floor`).

use hooklatch::json::parse_object;
use hooklatch::model::{NewEvent, Source};
use hooklatch::sources::Preset;
use warp::http::HeaderMap;

/// `events` new sales with event ids `{tag}-0`, `{tag}-1`, …, parsed, fingerprinted and
/// put through the Refersion preset before any clock starts.
pub fn refersion(tag: &str, events: usize) -> Vec<NewEvent> {
    let source = Source::parse("refersion").expect("a source name");
    let preset = Preset::for_source("refersion");
    (0..events)
        .map(|n| {
            let id = format!("{tag}-{n}");
            let body = format!(
                r#"{{"event_type":"sale","event_id":"{id}","order_id":"ORDER_{id}","commission_amount":{}.50,"sale_amount":75.00,"tracking_id":"YOyqC7"}}"#,
                n % 90 + 1
            );
            let object = parse_object(body.as_bytes()).expect("a sale is JSON");
            preset
                .prepare(&source, &HeaderMap::new(), body.as_bytes(), &object)
                .expect("a sale is accepted")
        })
        .collect()
}

/// `sales` dealt round-robin to `tasks` lanes, one per client task.
pub fn deal(sales: Vec<NewEvent>, tasks: usize) -> Vec<Vec<NewEvent>> {
    let mut lanes: Vec<Vec<NewEvent>> = (0..tasks).map(|_| Vec::new()).collect();
    for (n, sale) in sales.into_iter().enumerate() {
        lanes[n % tasks].push(sale);
    }
    lanes
}
