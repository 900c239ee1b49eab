DROP SCHEMA app CASCADE;
DROP EXTENSION IF EXISTS btree_gist;
DROP EXTENSION IF EXISTS pg_trgm;
REVOKE USAGE ON SCHEMA public FROM caregate_app;
-- The role itself is left in place: roles are shared by every database of the
-- cluster, and another caregate database may still use it.
