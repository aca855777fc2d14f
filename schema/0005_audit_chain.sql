-- fleetkey registry, schema version 5: the audit trail becomes a hash chain (fleetkey-formats(5),
-- AUDIT CHAIN). Each row gets its position in the chain (seq: 1, 2, 3, ...) and its link (hash:
-- 64 lower-case hex digits of SHA-256 over the domain, the previous row's hash and the row).
-- SQL cannot compute SHA-256: the registry's open path links the rows that have no hash yet, in
-- id order, right after this file runs and in the same transaction (Registry::migrate).
-- The table is rebuilt rather than altered, so that running this file again (on a registry whose
-- user_version was set back) gives the same chain: the links depend only on the rows.
CREATE TABLE audit_chained (
  id      INTEGER PRIMARY KEY,
  at      TEXT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  subject TEXT NOT NULL,
  details TEXT NOT NULL DEFAULT '{}',  -- JSON object
  seq     INTEGER UNIQUE,              -- the position in the chain, from 1
  hash    TEXT                         -- the link, hex
);
INSERT INTO audit_chained (id, at, actor, action, subject, details)
  SELECT id, at, actor, action, subject, details FROM audit ORDER BY id;
DROP TABLE audit;
ALTER TABLE audit_chained RENAME TO audit;
-- Append-only still; a row is written once with its link (only the migration fills a missing one).
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit WHEN OLD.hash IS NOT NULL
  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_linked BEFORE INSERT ON audit WHEN NEW.seq IS NULL OR NEW.hash IS NULL
  BEGIN SELECT RAISE(ABORT, 'audit rows are written with their seq and hash'); END;
