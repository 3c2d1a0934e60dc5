-- 020: an optional TOTP second factor (RFC 6238) for console staff. Forward-only. See docs/console.md.
-- The shared secret is sealed like an encrypted PIN (AES-256-GCM under the PIN key file, "staff:<name>" as
-- associated data), so a database dump alone does not reveal it. last_step: the newest time step used,
-- so one code signs in once.
ALTER TABLE staff
    ADD COLUMN totp_secret bytea,
    ADD COLUMN totp_key_id smallint,
    ADD COLUMN totp_last_step bigint,
    ADD CONSTRAINT staff_totp_sealed CHECK ((totp_secret IS NULL) = (totp_key_id IS NULL));
