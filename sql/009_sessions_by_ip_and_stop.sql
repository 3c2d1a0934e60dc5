-- 009: the NetFlow importer's lookup of "who may hold these IPs" stays independent of history.
-- Forward-only.
--
-- An import asks, for thousands of client IPs at once, which sessions were open at some point of the
-- imported bins. sessions_by_ip (001) holds every session an address ever had, so with thousands of IPs
-- the planner scans the whole table instead (0.4 s with a million closed sessions, growing with them).
-- The question splits into two small ones: the sessions still open, by address, and the ones that
-- stopped within the last minutes, by stop time.
CREATE INDEX sessions_open_by_ip ON sessions (framed_ip) WHERE stopped_at IS NULL AND framed_ip IS NOT NULL;
CREATE INDEX sessions_by_stop ON sessions (stopped_at) WHERE stopped_at IS NOT NULL;
