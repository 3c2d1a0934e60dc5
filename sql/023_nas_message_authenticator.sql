-- 023: whether FreeRADIUS drops an Access-Request of this NAS that lacks Message-Authenticator. Forward-only.
--
-- Debian 12's FreeRADIUS 3.2.1 predates the BlastRADIUS fix (CVE-2024-3596); what it has is
-- `require_message_authenticator` per client block, which `hotspotctl radius clients` writes from this
-- column. On by default, also for the NAS already registered: turn it off only for a NAS that cannot send
-- the attribute (docs/radius.md, "Transport security (BlastRADIUS)").
ALTER TABLE nas ADD COLUMN require_message_authenticator boolean NOT NULL DEFAULT true;
