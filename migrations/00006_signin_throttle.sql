-- +goose Up
-- Failed sign-ins are also counted per (client address, account) pair: the
-- strict bound that blocks one address's guesses at one account without
-- locking the owner out elsewhere (docs/SECURITY.md "Sign-in failures").
-- A pair key holds an address (at most 64 characters) and an email (at
-- most 254).
ALTER TABLE auth_throttle DROP CONSTRAINT auth_throttle_key_check;
ALTER TABLE auth_throttle ADD CONSTRAINT auth_throttle_key_check
    CHECK (key ~ '^(account|ip|pair):.' AND length(key) <= 400);

