//! PostgreSQL backend (placeholder until the backend lands).

use super::{EventId, NewEvent, Outcome, Source, Store, StoreError, StoreOptions, StoredConflict, StoredConversion, StoredEvent, Totals};

pub struct PostgresStore;

impl PostgresStore {
    pub fn open(_url: &str, _options: &StoreOptions) -> Result<PostgresStore, StoreError> {
        Err(StoreError::Unavailable("the PostgreSQL backend is not built yet".into()))
    }
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str { "postgres" }
    fn migrate(&self) -> Result<(), StoreError> { unreachable!() }
    fn process(&self, _: &NewEvent) -> Result<Outcome, StoreError> { unreachable!() }
    fn ping(&self) -> Result<(), StoreError> { unreachable!() }
    fn event(&self, _: &Source, _: &EventId) -> Result<Option<StoredEvent>, StoreError> { unreachable!() }
    fn conversion(&self, _: &Source, _: &EventId) -> Result<Option<StoredConversion>, StoreError> { unreachable!() }
    fn conflicts(&self, _: &Source, _: &EventId) -> Result<Vec<StoredConflict>, StoreError> { unreachable!() }
    fn totals(&self) -> Result<Totals, StoreError> { unreachable!() }
}
