-- fleetkey registry, schema version 4 (PostgreSQL dialect of schema/0004_device_state.sql): device
-- state documents; seq(D) = max(devices.state_seq, state.global_seq), both from state.counter.
ALTER TABLE devices ADD COLUMN state_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE state (
  id         BIGINT PRIMARY KEY CHECK (id = 1),
  counter    BIGINT NOT NULL CHECK (counter >= 1),
  global_seq BIGINT NOT NULL CHECK (global_seq >= 1)
);
INSERT INTO state (id, counter, global_seq) VALUES (1, 1, 1);
CREATE INDEX revocations_tokens_by_device ON revocations (device) WHERE kind = 'token';
