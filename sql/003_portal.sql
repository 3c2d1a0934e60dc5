-- 003: what the captive portal needs per hotspot. Forward-only.

-- Terms of use the guest must accept before logging in (plain text shown by the portal itself, since a
-- guest cannot reach any other site before login); NULL = no terms checkbox.
ALTER TABLE hotspots ADD COLUMN terms_of_use text CHECK (terms_of_use IS NULL OR length(btrim(terms_of_use)) > 0);
