-- 015: when a NAS last said it (re)started its accounting. Forward-only.
--
-- Accounting-On/Off ends every session the NAS had; no session it reports afterwards can have begun
-- before it. An Interim-Update or Stop whose Start never arrived is dated by its own Acct-Session-Time,
-- which is bounded by this time (a packet claiming more is held: docs/billing.md).
ALTER TABLE nas ADD COLUMN rebooted_at timestamptz;
