-- fleetkey registry, schema version 3 (PostgreSQL dialect of schema/0003_token_ids.sql): token ids
-- folded to lower case. A PostgreSQL registry starts at schema 5, so this finds nothing to change;
-- it is kept so that the numbers match.
DELETE FROM revocations
 WHERE kind = 'token'
   AND id NOT IN (SELECT min(id) FROM revocations WHERE kind = 'token' GROUP BY lower(token_id));
UPDATE revocations SET token_id = lower(token_id) WHERE kind = 'token' AND token_id <> lower(token_id);
