-- 028: let a balance move be a HOT update. Forward-only.
--
-- Every billed Interim-Update and Stop moves its account's balance (and updated_at): one UPDATE of a narrow
-- row that touches no indexed column, so it can stay in its page (HOT: no new entry in accounts_pkey, less
-- WAL) — if the page has room. At the default fillfactor (100) a new account's page is packed full, and
-- only 13 % of the balance moves of bench/accounting_import_cpu.py were HOT; at 50, 98 %
-- (docs/radius.md, "Where a billed packet's time goes"). The table stays small (one row per activated
-- card). Only pages written from now on are packed this way (a VACUUM FULL would rewrite the old ones).
ALTER TABLE accounts SET (fillfactor = 50);
