"""SQLAlchemy Core mirror of the schema in ``sql/`` (the migrations are the truth; a DB test checks
that every table and column declared here exists there)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import CIDR, INET, JSONB

metadata = MetaData()
TS = DateTime(timezone=True)

installation = Table(
    "installation",
    metadata,
    Column("singleton", Boolean, primary_key=True),
    Column("currency_code", Text, nullable=False),
    Column("currency_exponent", SmallInteger, nullable=False),
    Column("created_at", TS, nullable=False),
)

tariffs = Table(
    "tariffs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("time_price", BigInteger, nullable=False),
    Column("time_unit_seconds", Integer, nullable=False),
    Column("time_increment_seconds", Integer, nullable=False),
    Column("traffic_price", BigInteger, nullable=False),
    Column("traffic_unit_bytes", BigInteger, nullable=False),
    Column("traffic_direction", Text, nullable=False),
    Column("simultaneous_use", Integer, nullable=False),
    Column("rate_up_kbps", Integer),
    Column("rate_down_kbps", Integer),
    Column("created_at", TS, nullable=False),
)

tariff_bands = Table(
    "tariff_bands",
    metadata,
    Column("tariff_id", Integer, ForeignKey("tariffs.id"), primary_key=True),
    Column("start_minute", SmallInteger, primary_key=True),
    Column("time_price", BigInteger, nullable=False),
    Column("traffic_price", BigInteger, nullable=False),
)

tariff_free_networks = Table(
    "tariff_free_networks",
    metadata,
    Column("tariff_id", Integer, ForeignKey("tariffs.id"), primary_key=True),
    Column("network", CIDR, primary_key=True),
)

hotspots = Table(
    "hotspots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("timezone", Text, nullable=False),
    Column("tariff_id", Integer, ForeignKey("tariffs.id"), nullable=False),
    Column("mode", Text, nullable=False),
    Column("traffic_meter", Text, nullable=False),
    Column("interim_interval", Integer, nullable=False),
    Column("idle_timeout", Integer),
    Column("stale_grace", Integer, nullable=False),
    Column("heartbeat", Text, nullable=False),
    Column("heartbeat_timeout", Integer, nullable=False),
    Column("max_session_seconds", Integer, nullable=False),
    Column("max_rate_kbps", Integer, nullable=False),
    Column("hidden_grace", Integer, nullable=False),
    Column("portal_url", Text),
    Column("terms_of_use", Text),
    Column("created_at", TS, nullable=False),
)

nas = Table(
    "nas",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("hotspot_id", Integer, ForeignKey("hotspots.id"), nullable=False),
    Column("name", Text, nullable=False, unique=True),
    Column("ip_address", INET, nullable=False, unique=True),
    Column("secret", Text, nullable=False),
    Column("coa_port", Integer, nullable=False),
    Column("vendor", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("uam_secret", Text),  # 004: CoovaChilli uamsecret (signs redirects, keys the password encoding)
    Column("uam_login_url", Text),  # 004: the only URL the portal hands credentials to (MikroTik)
    Column("rebooted_at", TS),  # 015: the last Accounting-On/Off
    Column("restart_seen_at", TS),  # 026: the last Accounting-On/Off radiusd answered (billed or not yet)
    # 023: radiusd drops its Access-Requests without Message-Authenticator (BlastRADIUS)
    Column("require_message_authenticator", Boolean, nullable=False),
)

card_batches = Table(
    "card_batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("series", Integer, nullable=False, unique=True),
    Column("name", Text),
    Column("card_count", Integer, nullable=False),
    Column("face_value", BigInteger, nullable=False),
    Column("tariff_id", Integer, ForeignKey("tariffs.id")),
    Column("hotspot_id", Integer, ForeignKey("hotspots.id")),
    Column("valid_from", TS),
    Column("use_before", TS),
    Column("validity_seconds", BigInteger),
    Column("expires_at", TS),
    Column("pin_mode", Text, nullable=False),
    Column("pin_alphabet", Text, nullable=False),
    Column("pin_length", SmallInteger, nullable=False),
    Column("created_at", TS, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

cards = Table(
    "cards",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("batch_id", Integer, ForeignKey("card_batches.id"), nullable=False),
    Column("number", Text, nullable=False, unique=True),
    Column("pin_secret", LargeBinary, nullable=False),
    Column("pin_key_id", SmallInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("blocked", Boolean, nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id")),
    Column("activated_at", TS),
    Column("redeemed_at", TS),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("status", Text, nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id")),
    Column("card_id", BigInteger, ForeignKey("cards.id"), nullable=False),
    Column("hotspot_id", Integer, ForeignKey("hotspots.id"), nullable=False),
    Column("tariff_id", Integer, ForeignKey("tariffs.id"), nullable=False),
    Column("nas_id", Integer, ForeignKey("nas.id")),
    Column("source", Text, nullable=False),
    Column("acct_session_id", Text),
    Column("username", Text),
    Column("auth_token", Text, nullable=False, unique=True),
    Column("framed_ip", INET),
    Column("calling_station_id", Text),
    Column("started_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("last_heartbeat_at", TS),
    Column("stopped_at", TS),
    Column("terminate_cause", Text),
    Column("seconds", BigInteger, nullable=False),
    Column("input_octets", BigInteger, nullable=False),
    Column("output_octets", BigInteger, nullable=False),
    Column("time_cost_num", BigInteger, nullable=False),
    Column("traffic_cost_num", BigInteger, nullable=False),
    Column("charged", BigInteger, nullable=False),
    Column("reported_seconds", BigInteger),
    Column("reported_input_octets", BigInteger),
    Column("reported_output_octets", BigInteger),
    Column("counters_at", TS),
    Column("page_state", Text),
    Column("page_state_at", TS),
    Column("netflow_billable_bytes", BigInteger, nullable=False),
)

disconnects = Table(
    "disconnects",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("session_id", BigInteger, ForeignKey("sessions.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_at", TS, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_attempt_at", TS),
    Column("outcome", Text),
    Column("error_cause", Integer),
    Column("done_at", TS),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("cause", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("card_id", BigInteger, ForeignKey("cards.id")),
    Column("session_id", BigInteger, ForeignKey("sessions.id")),
    Column("seconds", BigInteger),
    Column("bytes", BigInteger),
    Column("note", Text),
    Column("created_at", TS, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("source", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("quantity", Text, nullable=False),
    Column("held", Numeric(20, 0), nullable=False),
    Column("reported", Numeric(20, 0)),
    Column("session_id", BigInteger, ForeignKey("sessions.id")),
    Column("hotspot_id", Integer, ForeignKey("hotspots.id")),
    Column("nas_id", Integer, ForeignKey("nas.id")),
    Column("identity", Text, nullable=False),
    Column("detail", JSONB, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("state", Text, nullable=False),
    Column("resolved_at", TS),
    Column("resolved_by", Text),
    Column("resolution_note", Text),
    Column("idempotency_key", Text, nullable=False, unique=True),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", TS, nullable=False),
    Column("card_number", Text, nullable=False),
    Column("client", Text),
    Column("hotspot_id", Integer, ForeignKey("hotspots.id")),
    Column("source", Text, nullable=False),
    Column("outcome", Text, nullable=False),
)

lockout_clears = Table(
    "lockout_clears",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("cleared_at", TS, nullable=False),
)
