-- 001: the billing schema. Money, bytes and seconds are BIGINT (money in minor units of the
-- installation's currency); every timestamp is timestamptz. Forward-only: never edit an applied file,
-- add the next number instead.

CREATE TABLE installation (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    currency_code text NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    currency_exponent smallint NOT NULL CHECK (currency_exponent BETWEEN 0 AND 4),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tariffs (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    -- price of online time: time_price minor units per time_unit_seconds, charged per started increment
    time_price bigint NOT NULL DEFAULT 0 CHECK (time_price >= 0),
    time_unit_seconds integer NOT NULL DEFAULT 60 CHECK (time_unit_seconds > 0),
    time_increment_seconds integer NOT NULL DEFAULT 1 CHECK (time_increment_seconds > 0),
    -- price of IP-layer bytes: traffic_price minor units per traffic_unit_bytes
    traffic_price bigint NOT NULL DEFAULT 0 CHECK (traffic_price >= 0),
    traffic_unit_bytes bigint NOT NULL DEFAULT 1000000 CHECK (traffic_unit_bytes IN (1000000, 1048576)),
    traffic_direction text NOT NULL DEFAULT 'total'
        CHECK (traffic_direction IN ('download', 'upload', 'total')),
    simultaneous_use integer NOT NULL DEFAULT 1 CHECK (simultaneous_use >= 1),
    rate_up_kbps integer CHECK (rate_up_kbps > 0),
    rate_down_kbps integer CHECK (rate_down_kbps > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Time-of-day price bands, in the hotspot's local time: from start_minute until the next band.
CREATE TABLE tariff_bands (
    tariff_id integer NOT NULL REFERENCES tariffs ON DELETE CASCADE,
    start_minute smallint NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    time_price bigint NOT NULL CHECK (time_price >= 0),
    traffic_price bigint NOT NULL CHECK (traffic_price >= 0),
    PRIMARY KEY (tariff_id, start_minute)
);

-- Traffic to or from these networks is never billed (local services, walled garden).
CREATE TABLE tariff_free_networks (
    tariff_id integer NOT NULL REFERENCES tariffs ON DELETE CASCADE,
    network cidr NOT NULL,
    PRIMARY KEY (tariff_id, network)
);

CREATE TABLE hotspots (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    timezone text NOT NULL,
    tariff_id integer NOT NULL REFERENCES tariffs,
    mode text NOT NULL DEFAULT 'radius' CHECK (mode IN ('radius', 'standalone')),
    -- one meter per quantity: bytes come from RADIUS octet counters or from NetFlow, never both
    traffic_meter text NOT NULL DEFAULT 'radius' CHECK (traffic_meter IN ('radius', 'netflow')),
    interim_interval integer NOT NULL DEFAULT 300 CHECK (interim_interval >= 60),
    idle_timeout integer CHECK (idle_timeout > 0),
    stale_grace integer NOT NULL DEFAULT 120 CHECK (stale_grace >= 0),
    heartbeat text NOT NULL DEFAULT 'on' CHECK (heartbeat IN ('on', 'off', 'grace')),
    heartbeat_timeout integer NOT NULL DEFAULT 90 CHECK (heartbeat_timeout >= 10),
    max_session_seconds integer NOT NULL DEFAULT 86400 CHECK (max_session_seconds > 0),
    portal_url text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nas (
    id serial PRIMARY KEY,
    hotspot_id integer NOT NULL REFERENCES hotspots,
    name text NOT NULL UNIQUE,
    ip_address inet NOT NULL UNIQUE,
    secret text NOT NULL CHECK (length(secret) > 0),
    coa_port integer NOT NULL DEFAULT 3799 CHECK (coa_port BETWEEN 1 AND 65535),
    vendor text NOT NULL DEFAULT 'generic' CHECK (vendor IN ('mikrotik', 'chilli', 'wispr', 'generic')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE card_batches (
    id serial PRIMARY KEY,
    series integer NOT NULL UNIQUE CHECK (series BETWEEN 0 AND 9999),
    name text,
    card_count integer NOT NULL CHECK (card_count > 0),
    face_value bigint NOT NULL CHECK (face_value > 0),
    tariff_id integer REFERENCES tariffs,      -- NULL: the tariff of the hotspot where the card is used
    hotspot_id integer REFERENCES hotspots,    -- NULL: valid at every hotspot
    valid_from timestamptz,
    use_before timestamptz,                    -- activation deadline: first use must come before it
    validity_seconds bigint CHECK (validity_seconds > 0),  -- counted from first use
    expires_at timestamptz,                    -- hard expiry
    pin_mode text NOT NULL CHECK (pin_mode IN ('encrypted', 'hashed')),
    pin_alphabet text NOT NULL,
    pin_length smallint NOT NULL CHECK (pin_length BETWEEN 4 AND 32),
    created_at timestamptz NOT NULL
);

CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    balance bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Cards carry no money themselves: value is loaded into an account through the ledger at first use
-- (or moved onto another card's account by a top-up). 'exhausted' and 'expired' are derived (views).
CREATE TABLE cards (
    id bigserial PRIMARY KEY,
    batch_id integer NOT NULL REFERENCES card_batches,
    number text NOT NULL UNIQUE,
    pin_secret bytea NOT NULL,          -- AES-256-GCM under the key file, or HMAC-SHA256 (hashed mode)
    pin_key_id smallint NOT NULL,
    status text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'active', 'redeemed')),
    blocked boolean NOT NULL DEFAULT false,
    account_id bigint REFERENCES accounts,
    activated_at timestamptz,
    redeemed_at timestamptz,
    CHECK ((status = 'new') = (account_id IS NULL))
);
CREATE INDEX cards_batch ON cards (batch_id);
CREATE INDEX cards_account ON cards (account_id) WHERE account_id IS NOT NULL;

-- One row per guest session, from the RADIUS Access-Accept (status 'pending' until Accounting-Start) or
-- from a portal login (standalone hotspots), to its end. The counters are the last cumulative values
-- seen; the *_cost_num columns are the core's rating meter, so a debit is always charged(new) - charged.
CREATE TABLE sessions (
    id bigserial PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('pending', 'open', 'closed')),
    account_id bigint REFERENCES accounts,   -- NULL while a new card's session awaits its Start
    card_id bigint NOT NULL REFERENCES cards,
    hotspot_id integer NOT NULL REFERENCES hotspots,
    tariff_id integer NOT NULL REFERENCES tariffs,
    nas_id integer REFERENCES nas,
    source text NOT NULL CHECK (source IN ('radius', 'portal')),
    acct_session_id text,
    username text,                            -- User-Name exactly as the NAS sent it (Disconnect uses it)
    auth_token text NOT NULL UNIQUE,          -- the Class we issued, or the portal session token
    framed_ip inet,
    calling_station_id text,
    started_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,        -- last accounting packet or heartbeat
    last_heartbeat_at timestamptz,            -- last portal heartbeat (status page open)
    stopped_at timestamptz,
    terminate_cause text,
    seconds bigint NOT NULL DEFAULT 0 CHECK (seconds >= 0),
    input_octets bigint NOT NULL DEFAULT 0 CHECK (input_octets >= 0),
    output_octets bigint NOT NULL DEFAULT 0 CHECK (output_octets >= 0),
    time_cost_num bigint NOT NULL DEFAULT 0,
    traffic_cost_num bigint NOT NULL DEFAULT 0,
    charged bigint NOT NULL DEFAULT 0,
    CHECK ((status = 'closed') = (stopped_at IS NOT NULL))
);
CREATE INDEX sessions_live_by_card ON sessions (card_id) WHERE status <> 'closed';
CREATE INDEX sessions_live_by_account ON sessions (account_id) WHERE status <> 'closed';
CREATE INDEX sessions_live_by_nas ON sessions (nas_id) WHERE status <> 'closed';
CREATE INDEX sessions_live_by_last_seen ON sessions (last_seen_at) WHERE status <> 'closed';
CREATE UNIQUE INDEX sessions_live_acct_id ON sessions (nas_id, acct_session_id)
    WHERE status <> 'closed' AND acct_session_id IS NOT NULL;
CREATE INDEX sessions_nas_acct_id ON sessions (nas_id, acct_session_id, started_at DESC);
CREATE INDEX sessions_by_ip ON sessions (framed_ip, started_at DESC) WHERE framed_ip IS NOT NULL;
CREATE INDEX sessions_by_card ON sessions (card_id, started_at DESC);
CREATE INDEX sessions_started ON sessions USING brin (started_at);

-- RFC 5176 Disconnect-Requests the worker must send (never from inside a RADIUS hook), with outcome.
CREATE TABLE disconnects (
    id bigserial PRIMARY KEY,
    session_id bigint NOT NULL REFERENCES sessions,
    reason text NOT NULL,                     -- exhausted, blocked, expired, heartbeat, admin
    requested_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    outcome text CHECK (outcome IN ('ack', 'nak', 'timeout', 'gate_closed', 'no_nas')),
    error_cause integer,
    done_at timestamptz
);
CREATE UNIQUE INDEX disconnects_one_pending ON disconnects (session_id) WHERE done_at IS NULL;

-- Every balance change, append-only; the idempotency key makes replays do nothing.
CREATE TABLE ledger (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts,
    amount bigint NOT NULL,
    cause text NOT NULL
        CHECK (cause IN ('card_load', 'topup', 'time', 'traffic', 'refund', 'expiry', 'adjustment')),
    idempotency_key text NOT NULL UNIQUE,
    card_id bigint REFERENCES cards,
    session_id bigint REFERENCES sessions,
    seconds bigint,
    bytes bigint,
    note text,
    created_at timestamptz NOT NULL
);
CREATE INDEX ledger_by_account ON ledger (account_id, id);
CREATE INDEX ledger_by_session ON ledger (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX ledger_created ON ledger USING brin (created_at);

CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: post a correcting row instead';
END $$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();

-- Failed and successful logins, for lockout (shared by RADIUS and the portal) and for admins.
CREATE TABLE login_attempts (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    card_number text NOT NULL,
    client text,                        -- client MAC (Calling-Station-Id) or IP
    hotspot_id integer REFERENCES hotspots,
    source text NOT NULL CHECK (source IN ('radius', 'portal')),
    outcome text NOT NULL               -- 'ok' or a refusal reason
);
CREATE INDEX login_attempts_failed_by_card ON login_attempts (card_number, at) WHERE outcome = 'wrong_pin';
CREATE INDEX login_attempts_failed_by_client ON login_attempts (client, at) WHERE outcome = 'wrong_pin';
CREATE INDEX login_attempts_at ON login_attempts USING brin (at);

-- An admin lifted a lockout: wrong PINs before cleared_at no longer count for that card number/client.
CREATE TABLE lockout_clears (
    kind text NOT NULL CHECK (kind IN ('card', 'client')),
    subject text NOT NULL,
    cleared_at timestamptz NOT NULL,
    PRIMARY KEY (kind, subject)
);

-- Admin views for plain SQL -----------------------------------------------------------------------

CREATE VIEW card_deadlines AS
SELECT c.id AS card_id,
       CASE WHEN c.activated_at IS NULL THEN b.use_before
            ELSE LEAST(b.expires_at, c.activated_at + make_interval(secs => b.validity_seconds))
       END AS deadline
FROM cards c JOIN card_batches b ON b.id = c.batch_id;

CREATE VIEW admin_cards AS
SELECT c.id, c.number, b.series, c.batch_id, b.name AS batch_name, h.name AS hotspot,
       CASE WHEN c.status = 'redeemed' THEN 'redeemed'
            WHEN c.blocked THEN 'blocked'
            WHEN d.deadline IS NOT NULL AND d.deadline <= now() THEN 'expired'
            WHEN b.expires_at IS NOT NULL AND b.expires_at <= now() THEN 'expired'
            WHEN c.status = 'active' AND a.balance <= 0 THEN 'exhausted'
            ELSE c.status
       END AS state,
       b.face_value, a.balance, c.account_id, c.activated_at, c.redeemed_at,
       LEAST(d.deadline, b.expires_at) AS deadline
FROM cards c
JOIN card_batches b ON b.id = c.batch_id
JOIN card_deadlines d ON d.card_id = c.id
LEFT JOIN accounts a ON a.id = c.account_id
LEFT JOIN hotspots h ON h.id = b.hotspot_id;

CREATE VIEW admin_sessions AS
SELECT s.id, s.status, c.number AS card_number, h.name AS hotspot, n.name AS nas, s.source, s.acct_session_id,
       s.framed_ip, s.calling_station_id, s.started_at, s.last_seen_at, s.stopped_at, s.terminate_cause,
       s.seconds, s.input_octets, s.output_octets, s.charged, s.account_id
FROM sessions s
JOIN cards c ON c.id = s.card_id
JOIN hotspots h ON h.id = s.hotspot_id
LEFT JOIN nas n ON n.id = s.nas_id;

CREATE VIEW admin_ledger AS
SELECT l.id, l.created_at, l.account_id, owner.number AS account_card, src.number AS card_number,
       l.cause, l.amount, l.seconds, l.bytes, l.session_id, l.idempotency_key, l.note,
       sum(l.amount) OVER (PARTITION BY l.account_id ORDER BY l.id) AS balance_after
FROM ledger l
LEFT JOIN LATERAL (SELECT number FROM cards WHERE account_id = l.account_id AND status = 'active'
                   ORDER BY activated_at LIMIT 1) owner ON true
LEFT JOIN cards src ON src.id = l.card_id;

CREATE VIEW admin_sales AS
SELECT b.id AS batch_id, b.series, b.name AS batch_name, b.card_count, b.face_value,
       count(c.id) FILTER (WHERE c.status <> 'new') AS cards_used,
       count(c.id) FILTER (WHERE c.status = 'redeemed') AS cards_redeemed,
       count(c.id) FILTER (WHERE c.blocked) AS cards_blocked,
       b.face_value * count(c.id) FILTER (WHERE c.status <> 'new') AS value_sold,
       b.created_at
FROM card_batches b
LEFT JOIN cards c ON c.batch_id = b.id
GROUP BY b.id;
