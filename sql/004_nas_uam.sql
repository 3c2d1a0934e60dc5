-- 004: what the captive portal needs to hand a guest's credentials back to a NAS in RADIUS mode (UAM).
-- Forward-only. The portal finds the NAS by the name it gives in its redirect (CoovaChilli `nasid`,
-- i.e. its radiusnasid; a MikroTik login page passes `$(identity)`): name the NAS that way.

-- CoovaChilli's uamsecret: it signs every redirect to the portal (md) and keys the password encoding.
ALTER TABLE nas ADD COLUMN uam_secret text CHECK (uam_secret IS NULL OR length(uam_secret) > 0);
-- The NAS's login URL (MikroTik: link-login-only, e.g. http://10.5.50.1/login). MikroTik does not sign its
-- redirect, so the portal only ever sends credentials to this URL.
ALTER TABLE nas ADD COLUMN uam_login_url text CHECK (uam_login_url IS NULL OR uam_login_url ~ '^https?://');
