REVOKE ALL ON idempotency_keys FROM caregate_app;
DROP TABLE idempotency_keys;
