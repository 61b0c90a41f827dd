-- Opens the savepoint one event of a writer batch runs in (src/store/sqlite/writer.rs).
-- A fixed name, prepared once per connection: the event's own savepoint is never nested
-- in another of the same name, since each is released before the next opens.
SAVEPOINT hooklatch_event
