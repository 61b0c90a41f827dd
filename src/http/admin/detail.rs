//! Loads one event with everything the admin side shows about it (see
//! [`crate::read::EventDetail`]) for the API and the console alike.

use crate::http::app::App;
use crate::http::error::ApiError;

pub use crate::read::EventDetail;

/// [`crate::store::AdminReads::event_detail`] from a request handler.
pub async fn load(
    app: &App,
    source: &str,
    event_id: &str,
) -> Result<Option<EventDetail>, ApiError> {
    let (source, event_id) = (source.to_owned(), event_id.to_owned());
    app.store_call(move |store| store.event_detail(&source, &event_id))
        .await
        .map_err(ApiError::from)
}
