-- Idempotency keys as the IETF Idempotency-Key draft describes them: a key belongs to the
-- caller that sent it (the JWT subject when the authorizer runs, '' without one) and to the
-- request it first came with. Two callers may pick the same key without ever seeing each
-- other's order, and the same key with a different request is refused (422) by comparing
-- request_fingerprint (sha256 of the product and the validated body).

ALTER TABLE orders
    ADD COLUMN idempotency_caller  text NOT NULL DEFAULT ''
        CHECK (char_length(idempotency_caller) <= 320),
    ADD COLUMN request_fingerprint text
        CHECK (request_fingerprint IS NULL OR request_fingerprint ~ '^[0-9a-f]{64}$');

ALTER TABLE orders DROP CONSTRAINT orders_idempotency_key_unique;
ALTER TABLE orders
    ADD CONSTRAINT orders_idempotency_key_unique UNIQUE (idempotency_caller, idempotency_key);
