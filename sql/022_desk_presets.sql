-- 022: the front desk's wrong PINs count towards a card's lockout, and the face values a hotspot's desk
-- sells. Forward-only. See docs/console.md.

-- A top-up at the desk takes a second card's number and PIN: a way to guess PINs like the portal's, so its
-- attempts are recorded like logins (source 'desk'; no client: the guest is not on the network).
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_source_check;
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_source_check
    CHECK (source IN ('radius', 'portal', 'desk'));

-- The face values the desk of a hotspot offers (an admin keeps the list); selling one takes a batch in stock
-- with that face value that is valid at the hotspot.
CREATE TABLE face_value_presets (
    hotspot_id integer NOT NULL REFERENCES hotspots,
    face_value bigint NOT NULL CHECK (face_value > 0),
    PRIMARY KEY (hotspot_id, face_value)
);
