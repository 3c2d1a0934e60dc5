-- 019: the front desk's web console: staff accounts, their console sessions, the audit trail, card sales
-- and the operator of each ledger row a person caused. Forward-only. See docs/console.md.

-- People who sell cards and help guests. cashier: sell, help, see; manager: + reports, adjustments;
-- admin: + configuration and staff. The password is an scrypt hash ("scrypt$n$r$p$salt$hash", hex).
CREATE TABLE staff (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    role text NOT NULL CHECK (role IN ('cashier', 'manager', 'admin')),
    password_hash text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL
);

-- A signed-in browser. The cookie carries a random token; only its SHA-256 is stored, so a database dump
-- opens no console session. A session idle for longer than the console's idle timeout is over.
CREATE TABLE staff_sessions (
    token_hash bytea PRIMARY KEY,
    staff_id integer NOT NULL REFERENCES staff,
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    client text NOT NULL,
    ended_at timestamptz
);
CREATE INDEX staff_sessions_by_staff ON staff_sessions (staff_id) WHERE ended_at IS NULL;

-- Who did what, when and from where: every console action (and failed sign-in), read by `hotspotctl audit`.
CREATE TABLE audit_trail (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    staff_id integer REFERENCES staff,       -- NULL: nobody signed in (a failed sign-in)
    staff_name text NOT NULL,                -- as typed for a failed sign-in; kept if the account goes
    action text NOT NULL,                    -- 'login', 'login.failed', 'card.sell', 'session.end', ...
    subject text,                            -- the card number, session id, staff name ... acted upon
    detail jsonb NOT NULL DEFAULT '{}',      -- never a PIN or a password
    client text NOT NULL                     -- the browser's address
);
CREATE INDEX audit_trail_at ON audit_trail USING brin (at);
CREATE INDEX audit_trail_failed_logins ON audit_trail (staff_name, at) WHERE action = 'login.failed';
CREATE INDEX audit_trail_failed_clients ON audit_trail (client, at) WHERE action = 'login.failed';

CREATE FUNCTION audit_trail_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END $$;
CREATE TRIGGER audit_trail_append_only BEFORE UPDATE OR DELETE ON audit_trail
    FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_is_append_only();

-- A card handed to a guest over the counter: who sold it, when, for how much (the till reconciles
-- against these). No money moves here: the card's value reaches an account through the ledger at first use.
CREATE TABLE card_sales (
    card_id bigint PRIMARY KEY REFERENCES cards,
    staff_id integer NOT NULL REFERENCES staff,
    sold_at timestamptz NOT NULL,
    price bigint NOT NULL CHECK (price >= 0)
);
CREATE INDEX card_sales_sold_at ON card_sales (sold_at);

-- The person behind a ledger row posted from the console (an adjustment); the ledger itself stays as
-- every other writer knows it.
CREATE TABLE ledger_operators (
    ledger_id bigint PRIMARY KEY REFERENCES ledger,
    staff_id integer NOT NULL REFERENCES staff,
    reason text NOT NULL CHECK (length(btrim(reason)) > 0)
);
