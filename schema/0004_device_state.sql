-- fleetkey registry, schema version 4: device state documents (fleetkey-state(5)).
-- A state document's sequence number is seq(D) = max(devices.state_seq, state.global_seq). Both
-- are taken from state.counter, which only goes up: a change for one device raises the counter and
-- sets that device's state_seq, a change for every device (a master version retired, a token
-- revoked by bare id) sets global_seq, so it touches one row, not a million. Adding a column with a
-- constant default rewrites no row either: this migration is cheap on a registry of any size.
ALTER TABLE devices ADD COLUMN state_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE state (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  counter    INTEGER NOT NULL CHECK (counter >= 1),
  global_seq INTEGER NOT NULL CHECK (global_seq >= 1)
);
INSERT INTO state (id, counter, global_seq) VALUES (1, 1, 1);
-- The device a revoked token was for (NULL: revoked by id, no known device: listed for every device).
CREATE INDEX revocations_tokens_by_device ON revocations (device) WHERE kind = 'token';
