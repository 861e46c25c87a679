-- Extensions the schema relies on: pg_trgm for trigram similarity in knowledge search.
-- PGlite loads it through its contrib bundle; PostgreSQL 15 ships it in contrib.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
