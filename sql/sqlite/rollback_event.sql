-- Undoes what a failed event did inside its savepoint; RELEASE then ends the savepoint.
ROLLBACK TO hooklatch_event
