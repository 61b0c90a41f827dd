-- Keeps what the event's savepoint did, inside the batch's transaction (and ends it).
RELEASE hooklatch_event
