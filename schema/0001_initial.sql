-- fleetkey registry, schema version 1.
-- The registry never holds a secret: keys appear only as fingerprints (fleetkey-formats(5)).
-- Times are UTC, ISO 8601 ("2026-11-22T00:12:17Z").

CREATE TABLE master_keys (
  version     INTEGER PRIMARY KEY CHECK (version > 0),
  created     TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  test_key    INTEGER NOT NULL CHECK (test_key IN (0, 1)),
  status      TEXT NOT NULL CHECK (status IN ('current', 'active', 'retired')),
  retired     TEXT
);

CREATE TABLE devices (
  id              TEXT PRIMARY KEY,
  model           TEXT,
  labels          TEXT NOT NULL DEFAULT '{}',  -- JSON object of string values
  key_version     INTEGER NOT NULL REFERENCES master_keys (version),
  fingerprint     TEXT NOT NULL,               -- of K_dev(id)
  status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  pairing_counter INTEGER NOT NULL DEFAULT 0,
  created         TEXT NOT NULL,
  revoked         TEXT,
  revoke_reason   TEXT
) WITHOUT ROWID;

CREATE TABLE users (
  name    TEXT PRIMARY KEY,
  labels  TEXT NOT NULL DEFAULT '{}',
  created TEXT NOT NULL
) WITHOUT ROWID;

-- One row per (user, device). `epoch` is the user's key epoch on that device: revoking bumps it,
-- so K_user(D, U, e) and every token bound to the old epoch stop working.
CREATE TABLE grants (
  user          TEXT NOT NULL REFERENCES users (name),
  device        TEXT NOT NULL REFERENCES devices (id),
  role          TEXT NOT NULL,
  epoch         INTEGER NOT NULL CHECK (epoch > 0),
  status        TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  created       TEXT NOT NULL,
  expires       TEXT,
  revoked       TEXT,
  revoke_reason TEXT,
  PRIMARY KEY (user, device)
) WITHOUT ROWID;
CREATE INDEX grants_by_device ON grants (device);

CREATE TABLE revocations (
  id       INTEGER PRIMARY KEY,
  kind     TEXT NOT NULL CHECK (kind IN ('device', 'grant', 'token')),
  device   TEXT,
  user     TEXT,
  token_id TEXT,   -- hex of the token's cti/jti
  reason   TEXT NOT NULL,
  created  TEXT NOT NULL
);
CREATE INDEX revocations_by_token ON revocations (token_id) WHERE token_id IS NOT NULL;

-- Append-only: every change to the registry writes one row here in the same transaction.
CREATE TABLE audit (
  id      INTEGER PRIMARY KEY,
  at      TEXT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  subject TEXT NOT NULL,
  details TEXT NOT NULL DEFAULT '{}'  -- JSON object
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
