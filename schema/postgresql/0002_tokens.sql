-- fleetkey registry, schema version 2 (PostgreSQL dialect of schema/0002_tokens.sql): token revocations.
ALTER TABLE revocations ADD COLUMN token_exp BIGINT;
CREATE UNIQUE INDEX revocations_token_once ON revocations (token_id) WHERE kind = 'token';
