-- fleetkey registry, schema version 3: token ids compare with A-Z folded to a-z (fleetkey-tokens(5),
-- TOKEN IDS). Before, a JWT revoked by its text kept its jti as written, so "ABC" and "abc" could
-- be two rows for one token: the earliest stays, and every id is folded. (lower() folds ASCII only.)
DELETE FROM revocations
 WHERE kind = 'token'
   AND id NOT IN (SELECT min(id) FROM revocations WHERE kind = 'token' GROUP BY lower(token_id));
UPDATE revocations SET token_id = lower(token_id) WHERE kind = 'token' AND token_id <> lower(token_id);
