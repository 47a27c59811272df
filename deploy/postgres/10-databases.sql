-- One database per service on one Postgres server (ARCHITECTURE.md: no
-- service reads another's tables). The postgres image runs this file once,
-- when it initialises an empty data volume; each service then migrates its
-- own schema at start-up.
--
-- Every statement is idempotent, so the file can also be applied by hand to
-- a volume created before a database was added:
--   docker compose exec -T postgres psql -U minizon -d postgres < deploy/postgres/10-databases.sql
--
-- CREATE DATABASE has no IF NOT EXISTS and cannot run inside a function or
-- DO block, so psql's \gexec runs each one only if the database is missing.
SELECT 'CREATE DATABASE loms' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'loms')\gexec
SELECT 'CREATE DATABASE checkout' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'checkout')\gexec
SELECT 'CREATE DATABASE product' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'product')\gexec
SELECT 'CREATE DATABASE notifications' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'notifications')\gexec
