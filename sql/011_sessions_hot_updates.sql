-- 011: let every heartbeat and Interim-Update of a session be a HOT update. Forward-only.
--
-- A session row is rewritten on every sign of life (portal heartbeat, RADIUS Interim-Update, NetFlow
-- import), and each of those moves `last_seen_at`. While an index covers that column, PostgreSQL cannot
-- update the row in place (HOT): every sign of life adds an entry to each of the table's ten indexes and
-- leaves them to vacuum. No query uses the index: liveness is `session_is_live(...)`, which compares
-- `last_seen_at` with each hotspot's own interim interval, not with one range; the worker finds live
-- sessions through the other partial indexes on `status <> 'closed'` (a few thousand rows at most).
-- Measured with 5,000 guests sending heartbeats: see docs/portal.md.
DROP INDEX sessions_live_by_last_seen;
