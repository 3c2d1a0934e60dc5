-- 007: room for the NetFlow importer's session updates. Forward-only.

-- Each NetFlow import adds to the counters and rating meter of every session of the hotspot that had
-- traffic: with 20,000 guests online, 20,000 rows in one statement, every minute. None of those columns is
-- indexed, so each update can stay in its page (a HOT update) instead of adding an entry to each of the
-- table's indexes (eleven) — if the page has room for the new versions of all its rows at once. At
-- fillfactor 80 only about one row in five found room; at 50 every row does (the previous import's old
-- versions are pruned away before the next one). Only pages written from now on are packed this way.
ALTER TABLE sessions SET (fillfactor = 50);
