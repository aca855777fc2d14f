-- fleetkey registry, schema version 2: token revocations (fleetkey-tokens(5)).
-- A token id (hex of a CWT cti, or a JWT jti) is revoked at most once; token_exp is the token's
-- exp claim when known, so that entries past it can be pruned without reopening old tokens.
ALTER TABLE revocations ADD COLUMN token_exp INTEGER;
CREATE UNIQUE INDEX revocations_token_once ON revocations (token_id) WHERE kind = 'token';
