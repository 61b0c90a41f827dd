//! One page of a list, for the admin API and the console alike: the same store read and
//! the same cursor, whichever of the two shows it.

use serde::Serialize;

use super::query::PageQuery;
use crate::http::app::App;
use crate::http::error::ApiError;
use crate::read::{ConversionFilter, ConversionItem, Cursor, EventFilter, EventItem, page};
use crate::store::{Store, StoreError};

/// A row the admin side lists a page at a time, with the store read that lists it.
pub trait Listed: Sized + Send + 'static {
    type Filter: Send + 'static;

    /// Up to `limit` rows matching `filter`, in list order, after `after`.
    fn list(
        store: &dyn Store,
        filter: &Self::Filter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<Self>, StoreError>;

    /// Where a page that ends with this row goes on.
    fn resume_at(&self) -> Cursor;
}

// The two impls differ only in the filter type and the store verb they call.
impl Listed for EventItem {
    type Filter = EventFilter;

    fn list(
        store: &dyn Store,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<EventItem>, StoreError> {
        store.list_events(filter, after, limit)
    }

    fn resume_at(&self) -> Cursor {
        self.cursor()
    }
}

impl Listed for ConversionItem {
    type Filter = ConversionFilter;

    fn list(
        store: &dyn Store,
        filter: &ConversionFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ConversionItem>, StoreError> {
        store.list_conversions(filter, after, limit)
    }

    fn resume_at(&self) -> Cursor {
        self.cursor()
    }
}

/// One page and the cursor of the next (`None` on the last page); the API answers it
/// as it is.
#[derive(Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Asks the store for one row more than the page, which tells whether a next page exists
/// without counting.
pub async fn one_page<T: Listed>(app: &App, q: PageQuery<T::Filter>) -> Result<Page<T>, ApiError> {
    let limit = q.limit;
    let rows = app
        .store_call(move |store| T::list(store, &q.filter, q.cursor.as_ref(), limit + 1))
        .await?;
    let (items, next_cursor) = page(rows, limit, T::resume_at);
    Ok(Page { items, next_cursor })
}
