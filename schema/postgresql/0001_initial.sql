-- fleetkey registry, schema version 1, PostgreSQL dialect of schema/0001_initial.sql (same tables,
-- columns and meaning). Text that is ordered or compared is COLLATE "C": bytewise, as in SQLite.
-- Integers are BIGINT (SQLite's INTEGER is 64-bit). "user" is a reserved word here: always quoted.

CREATE TABLE master_keys (
  version     BIGINT PRIMARY KEY CHECK (version > 0),
  created     TEXT COLLATE "C" NOT NULL,
  fingerprint TEXT COLLATE "C" NOT NULL,
  test_key    BIGINT NOT NULL CHECK (test_key IN (0, 1)),
  status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('current', 'active', 'retired')),
  retired     TEXT COLLATE "C"
);

CREATE TABLE devices (
  id              TEXT COLLATE "C" PRIMARY KEY,
  model           TEXT COLLATE "C",
  labels          TEXT COLLATE "C" NOT NULL DEFAULT '{}',
  key_version     BIGINT NOT NULL REFERENCES master_keys (version),
  fingerprint     TEXT COLLATE "C" NOT NULL,
  status          TEXT COLLATE "C" NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  pairing_counter BIGINT NOT NULL DEFAULT 0,
  created         TEXT COLLATE "C" NOT NULL,
  revoked         TEXT COLLATE "C",
  revoke_reason   TEXT COLLATE "C"
);

CREATE TABLE users (
  name    TEXT COLLATE "C" PRIMARY KEY,
  labels  TEXT COLLATE "C" NOT NULL DEFAULT '{}',
  created TEXT COLLATE "C" NOT NULL
);

CREATE TABLE grants (
  "user"        TEXT COLLATE "C" NOT NULL REFERENCES users (name),
  device        TEXT COLLATE "C" NOT NULL REFERENCES devices (id),
  role          TEXT COLLATE "C" NOT NULL,
  epoch         BIGINT NOT NULL CHECK (epoch > 0),
  status        TEXT COLLATE "C" NOT NULL CHECK (status IN ('active', 'revoked')),
  created       TEXT COLLATE "C" NOT NULL,
  expires       TEXT COLLATE "C",
  revoked       TEXT COLLATE "C",
  revoke_reason TEXT COLLATE "C",
  PRIMARY KEY ("user", device)
);
CREATE INDEX grants_by_device ON grants (device);

-- id is assigned by fleetkey as max(id) + 1 under the write lock, like SQLite's rowid: no gaps
-- after a rolled-back change, and a copy between backends keeps every id.
CREATE TABLE revocations (
  id       BIGINT PRIMARY KEY,
  kind     TEXT COLLATE "C" NOT NULL CHECK (kind IN ('device', 'grant', 'token')),
  device   TEXT COLLATE "C",
  "user"   TEXT COLLATE "C",
  token_id TEXT COLLATE "C",
  reason   TEXT COLLATE "C" NOT NULL,
  created  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX revocations_by_token ON revocations (token_id) WHERE token_id IS NOT NULL;

-- Append-only: every change to the registry writes one row here in the same transaction.
CREATE TABLE audit (
  id      BIGINT PRIMARY KEY,
  at      TEXT COLLATE "C" NOT NULL,
  actor   TEXT COLLATE "C" NOT NULL,
  action  TEXT COLLATE "C" NOT NULL,
  subject TEXT COLLATE "C" NOT NULL,
  details TEXT COLLATE "C" NOT NULL DEFAULT '{}'
);
CREATE FUNCTION fleetkey_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit is append-only';
END
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION fleetkey_audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION fleetkey_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION fleetkey_audit_append_only();
