-- 013: time-of-day bands are a daily cycle. Forward-only.
--
-- From this version on, a band runs until the next band starts, across midnight: the day's last band
-- runs on until the first band starts the next morning, and a tariff with bands never charges its base
-- prices (rlm_hotspot/core/tariff.py). Before, a band stopped at midnight and the base prices applied
-- from 00:00 to the first band. So that no existing tariff changes its prices, every tariff whose bands
-- do not start at 00:00 gets that old meaning written out: a band at 00:00 with its base prices. (A
-- tariff without bands keeps its base prices all day, as before.) An operator who meant the night band
-- to run past midnight sees the band written out ("00:00-07:00 1.20/h") in `hotspotctl tariff show`,
-- and deletes it to get the wrap-around (docs/billing.md, Tariffs).

INSERT INTO tariff_bands (tariff_id, start_minute, time_price, traffic_price)
SELECT t.id, 0, t.time_price, t.traffic_price
FROM tariffs t
WHERE EXISTS (SELECT 1 FROM tariff_bands b WHERE b.tariff_id = t.id)
  AND NOT EXISTS (SELECT 1 FROM tariff_bands b WHERE b.tariff_id = t.id AND b.start_minute = 0);

COMMENT ON TABLE tariff_bands IS
    'Time-of-day prices in the hotspot''s local time, a daily cycle: from start_minute until the next '
    'band starts, across midnight (the last band runs on until the first). With bands, the tariff''s '
    'base prices are never in force.';
