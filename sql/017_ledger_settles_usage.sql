-- 017: a session's statement adds up to its counters. Forward-only.
--
-- A debit row carries the seconds or bytes of the update that posted it. An update whose cumulative
-- charge stays in the same minor unit (rounding is once, upwards, on the cumulative meter: docs/billing.md)
-- posts no row, so its seconds and bytes were on no row: a statement showed fewer bytes than were used,
-- although they were paid for by the rounding of the row before. When a session is closed (and whenever
-- a closed session's counters still move: a late Stop, a released quarantine), a zero-amount row per
-- quantity settles what the rows so far do not carry, keyed by the level it settles to: the rows of a
-- session then add up to its seconds and billable bytes.

-- The billable bytes of a session whose bytes come from NetFlow (RADIUS-metered sessions have them in
-- their octet counters): what the imports rated, free networks excluded.
ALTER TABLE sessions ADD COLUMN netflow_billable_bytes bigint NOT NULL DEFAULT 0
    CHECK (netflow_billable_bytes >= 0);
UPDATE sessions s SET netflow_billable_bytes = l.bytes
FROM (SELECT session_id, sum(bytes) AS bytes FROM ledger WHERE cause = 'traffic' AND bytes IS NOT NULL
      GROUP BY session_id) l
WHERE l.session_id = s.id AND (s.source <> 'radius'
      OR (SELECT h.traffic_meter FROM hotspots h WHERE h.id = s.hotspot_id) = 'netflow');

-- The billable bytes of a session: per its tariff's direction from the NAS's counters, or what NetFlow
-- imports rated.
CREATE FUNCTION session_billable_bytes(s sessions) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN s.source = 'radius' AND h.traffic_meter = 'radius' THEN
            CASE t.traffic_direction
                WHEN 'download' THEN s.output_octets
                WHEN 'upload' THEN s.input_octets
                ELSE s.input_octets + s.output_octets
            END
        ELSE s.netflow_billable_bytes
    END
    FROM hotspots h, tariffs t WHERE h.id = s.hotspot_id AND t.id = s.tariff_id
$$;

CREATE FUNCTION settle_session_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    carried_seconds bigint;
    carried_bytes bigint;
    billable bigint := session_billable_bytes(NEW);
BEGIN
    IF NEW.account_id IS NULL THEN
        RETURN NULL;  -- never opened: nothing was used
    END IF;
    SELECT coalesce(sum(seconds) FILTER (WHERE cause = 'time'), 0),
           coalesce(sum(bytes) FILTER (WHERE cause = 'traffic'), 0)
    INTO carried_seconds, carried_bytes
    FROM ledger WHERE session_id = NEW.id;
    INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, session_id, seconds, bytes, note,
                        created_at)
    SELECT NEW.account_id, 0, e.cause, e.key, NEW.card_id, NEW.id, e.seconds, e.bytes,
           'usage settled at the close (no minor unit moved for it)', coalesce(NEW.stopped_at, now())
    FROM (VALUES ('time', 'settle-time:' || NEW.id || ':' || NEW.seconds, NEW.seconds - carried_seconds,
                  CAST(NULL AS bigint)),
                 ('traffic', 'settle-traffic:' || NEW.id || ':' || billable, CAST(NULL AS bigint),
                  billable - carried_bytes)) AS e(cause, key, seconds, bytes)
    WHERE coalesce(e.seconds, e.bytes) > 0
    ON CONFLICT (idempotency_key) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_settle_usage AFTER UPDATE ON sessions FOR EACH ROW
    WHEN (NEW.status = 'closed' AND (OLD.status <> 'closed' OR OLD.seconds <> NEW.seconds
          OR OLD.input_octets <> NEW.input_octets OR OLD.output_octets <> NEW.output_octets
          OR OLD.netflow_billable_bytes <> NEW.netflow_billable_bytes))
    EXECUTE FUNCTION settle_session_usage();

-- Sessions closed before this migration: settled now.
INSERT INTO ledger (account_id, amount, cause, idempotency_key, card_id, session_id, seconds, bytes, note,
                    created_at)
SELECT s.account_id, 0, e.cause, e.key, s.card_id, s.id, e.seconds, e.bytes,
       'usage settled at the close (no minor unit moved for it)', s.stopped_at
FROM sessions s
LEFT JOIN (SELECT session_id, coalesce(sum(seconds) FILTER (WHERE cause = 'time'), 0) AS seconds,
                  coalesce(sum(bytes) FILTER (WHERE cause = 'traffic'), 0) AS bytes
           FROM ledger GROUP BY session_id) l ON l.session_id = s.id
CROSS JOIN LATERAL (VALUES
    ('time', 'settle-time:' || s.id || ':' || s.seconds, s.seconds - coalesce(l.seconds, 0), CAST(NULL AS bigint)),
    ('traffic', 'settle-traffic:' || s.id || ':' || session_billable_bytes(s), CAST(NULL AS bigint),
     session_billable_bytes(s) - coalesce(l.bytes, 0))) AS e(cause, key, seconds, bytes)
WHERE s.status = 'closed' AND s.account_id IS NOT NULL AND coalesce(e.seconds, e.bytes) > 0
ON CONFLICT (idempotency_key) DO NOTHING;
