-- fleetkey registry, schema version 6, PostgreSQL dialect: devices.key_version is checked against
-- master_keys once per statement instead of once per row. A foreign key runs one query for every
-- inserted row, which more than doubled the time of a million-row COPY (bench/pg.md); the SQLite
-- registry's bulk import likewise checks key_version once per batch with its foreign keys off. The
-- triggers below keep the same guarantee for every writer, fleetkey or not: no device names a
-- master key version that the registry does not hold.

ALTER TABLE devices DROP CONSTRAINT devices_key_version_fkey;

-- Raised by any statement that leaves a device whose key_version names no master key.
CREATE FUNCTION fleetkey_devices_key_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM (SELECT DISTINCT key_version FROM fleetkey_new_devices) AS n
             WHERE NOT EXISTS (SELECT 1 FROM master_keys AS m WHERE m.version = n.key_version)) THEN
    RAISE foreign_key_violation USING MESSAGE = 'a device''s key_version names no master key';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER devices_key_version_insert AFTER INSERT ON devices
  REFERENCING NEW TABLE AS fleetkey_new_devices
  FOR EACH STATEMENT EXECUTE FUNCTION fleetkey_devices_key_version();
CREATE TRIGGER devices_key_version_update AFTER UPDATE ON devices
  REFERENCING NEW TABLE AS fleetkey_new_devices
  FOR EACH STATEMENT EXECUTE FUNCTION fleetkey_devices_key_version();

-- Raised by a statement that removes or renumbers a master key version some device still names.
CREATE FUNCTION fleetkey_master_keys_in_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM fleetkey_old_master_keys AS o
             WHERE NOT EXISTS (SELECT 1 FROM master_keys AS m WHERE m.version = o.version)
               AND EXISTS (SELECT 1 FROM devices AS d WHERE d.key_version = o.version)) THEN
    RAISE foreign_key_violation USING MESSAGE = 'a master key version that devices name cannot be removed';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER master_keys_in_use_delete AFTER DELETE ON master_keys
  REFERENCING OLD TABLE AS fleetkey_old_master_keys
  FOR EACH STATEMENT EXECUTE FUNCTION fleetkey_master_keys_in_use();
CREATE TRIGGER master_keys_in_use_update AFTER UPDATE ON master_keys
  REFERENCING OLD TABLE AS fleetkey_old_master_keys
  FOR EACH STATEMENT EXECUTE FUNCTION fleetkey_master_keys_in_use();
-- TRUNCATE of master_keys while devices has rows is refused too (a foreign key refused it).
CREATE FUNCTION fleetkey_master_keys_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM devices) THEN
    RAISE foreign_key_violation USING MESSAGE = 'master_keys cannot be truncated while devices name its versions';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER master_keys_in_use_truncate BEFORE TRUNCATE ON master_keys
  FOR EACH STATEMENT EXECUTE FUNCTION fleetkey_master_keys_truncate();
