-- PostgreSQL's 011 lets `hooklatch copy` skip the totals triggers for the rows it writes
-- (it rebuilds the totals after). SQLite keeps its totals in the writer thread, not in
-- triggers, and its copy never added to them, so there is nothing to change here; the
-- file keeps the two folders numbered alike.
SELECT 1;
