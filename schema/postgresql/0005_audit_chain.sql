-- fleetkey registry, schema version 5 (PostgreSQL dialect of schema/0005_audit_chain.sql): the audit
-- trail becomes a hash chain. Rows without a link are linked by code right after this file runs, in
-- the same transaction (as on SQLite). A row is written once with its link; only that linking may
-- update a row, and no row is ever deleted.
ALTER TABLE audit ADD COLUMN seq BIGINT UNIQUE;
ALTER TABLE audit ADD COLUMN hash TEXT COLLATE "C";
DROP TRIGGER audit_no_update ON audit;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW WHEN (OLD.hash IS NOT NULL)
  EXECUTE FUNCTION fleetkey_audit_append_only();
CREATE FUNCTION fleetkey_audit_linked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit rows are written with their seq and hash';
END
$$;
CREATE TRIGGER audit_linked BEFORE INSERT ON audit FOR EACH ROW WHEN (NEW.seq IS NULL OR NEW.hash IS NULL)
  EXECUTE FUNCTION fleetkey_audit_linked();
