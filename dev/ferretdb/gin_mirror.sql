-- Makes PostgreSQL serve the filters FerretDB 1.24 sends.
--
-- FerretDB's PostgreSQL backend stores each document in one jsonb column `_jsonb` and
-- pushes a top-level equality filter down as `_jsonb->'field' @> 'value'`, but the
-- indexes it creates for `createIndexes` are btree indexes on `(_jsonb->'field')`, which
-- cannot answer `@>`: without help every query is a sequential scan.
--
-- For the leading field of every btree index FerretDB creates (`_id` included, which
-- every collection has), this keeps one GIN index on `(_jsonb->'field')`
-- (jsonb_path_ops: it supports exactly `@>`, and is smaller and faster than jsonb_ops;
-- fastupdate off: a pending list would be scanned by every query until vacuumed).
-- The leading field is the one a compound index is designed to be entered by (the
-- user of an inbox, the status of an order); the other fields of the filter are
-- checked on the few rows it yields, as FerretDB sorts and limits them itself anyway.
-- Mirroring the other fields too would only slow every insert down.
-- Event triggers keep the mirrors in step with FerretDB's own DDL: creating an index
-- creates the missing mirrors, dropping one drops mirrors no index needs any more.
-- `herald_gin_reconcile_all()` does the same for tables that existed before.
--
-- Only top-level fields are mirrored: FerretDB does not push dotted paths down.
-- Mirror indexes are recognised by their comment (`herald gin mirror of <field>`).
-- The whole file is idempotent; herald-ferretdb runs it at every start.

CREATE OR REPLACE FUNCTION herald_gin_field(expr text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
  -- '((_jsonb -> ''user_id''::text))' → 'user_id'; anything else (nested paths) → NULL
  SELECT replace(substring(expr FROM '^\(*_jsonb -> ''((?:[^'']|'''')*)''::text\)*$'), '''''', '''')
$$;

CREATE OR REPLACE FUNCTION herald_gin_name(tbl text, field text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
  -- deterministic, unique per (table, field), within PostgreSQL's 63-byte limit
  SELECT left(tbl, 36) || '_' || left(regexp_replace(lower(field), '[^a-z0-9]', '', 'g'), 12)
         || '_' || left(md5(tbl || '/' || field), 8) || '_gin'
$$;

-- Creates the missing mirrors of one table and drops those no btree index needs.
CREATE OR REPLACE FUNCTION herald_gin_reconcile(tbl oid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  wanted text[];
  f text;
  have record;
  nsp text;
  rel text;
BEGIN
  SELECT n.nspname, c.relname INTO nsp, rel
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = tbl AND c.relkind = 'r';
  IF rel IS NULL OR nsp IN ('pg_catalog', 'information_schema') THEN
    RETURN;
  END IF;

  -- the leading top-level field of every btree index on the table
  SELECT coalesce(array_agg(DISTINCT fld), '{}') INTO wanted
  FROM (
    SELECT herald_gin_field(pg_get_indexdef(x.indexrelid, k.n, false)) AS fld
    FROM pg_index x
    JOIN pg_class ic ON ic.oid = x.indexrelid
    JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
    CROSS JOIN LATERAL (VALUES (1)) AS k(n)
    WHERE x.indrelid = tbl
  ) s
  WHERE fld IS NOT NULL;

  FOR have IN
    SELECT ic.relname AS name, substring(d.description FROM '^herald gin mirror of (.*)$') AS fld
    FROM pg_index x
    JOIN pg_class ic ON ic.oid = x.indexrelid
    JOIN pg_description d ON d.objoid = ic.oid AND d.classoid = 'pg_class'::regclass
    WHERE x.indrelid = tbl AND d.description LIKE 'herald gin mirror of %'
  LOOP
    IF NOT have.fld = ANY (wanted) THEN
      EXECUTE format('DROP INDEX IF EXISTS %I.%I', nsp, have.name);
    END IF;
  END LOOP;

  FOREACH f IN ARRAY wanted LOOP
    IF to_regclass(format('%I.%I', nsp, herald_gin_name(rel, f))) IS NULL THEN
      EXECUTE format('CREATE INDEX %I ON %I.%I USING gin ((_jsonb -> %L) jsonb_path_ops) WITH (fastupdate = off)',
                     herald_gin_name(rel, f), nsp, rel, f);
      EXECUTE format('COMMENT ON INDEX %I.%I IS %L', nsp, herald_gin_name(rel, f),
                     'herald gin mirror of ' || f);
    END IF;
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION herald_gin_reconcile_all() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  t oid;
BEGIN
  FOR t IN
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%'
      AND EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attname = '_jsonb' AND NOT a.attisdropped)
  LOOP
    PERFORM herald_gin_reconcile(t);
  END LOOP;
END $$;

-- After FerretDB creates a btree index: mirror its fields.
CREATE OR REPLACE FUNCTION herald_gin_on_create() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  cmd record;
  tbl oid;
BEGIN
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
             WHERE command_tag = 'CREATE INDEX' AND object_type = 'index'
  LOOP
    SELECT x.indrelid INTO tbl FROM pg_index x
    JOIN pg_class ic ON ic.oid = x.indexrelid
    JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
    WHERE x.indexrelid = cmd.objid;
    IF tbl IS NOT NULL THEN
      PERFORM herald_gin_reconcile(tbl);
    END IF;
  END LOOP;
END $$;

-- After FerretDB drops an index: drop mirrors that no index of that schema needs now.
CREATE OR REPLACE FUNCTION herald_gin_on_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  nsp text;
  t oid;
BEGIN
  FOR nsp IN SELECT DISTINCT schema_name FROM pg_event_trigger_dropped_objects()
             WHERE object_type = 'index' AND schema_name IS NOT NULL
               AND object_name !~ '_[0-9a-f]{8}_gin$'  -- our own drops of mirrors
  LOOP
    FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = nsp AND c.relkind = 'r'
    LOOP
      PERFORM herald_gin_reconcile(t);
    END LOOP;
  END LOOP;
END $$;

DROP EVENT TRIGGER IF EXISTS herald_gin_on_create;
CREATE EVENT TRIGGER herald_gin_on_create ON ddl_command_end
  WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION herald_gin_on_create();

DROP EVENT TRIGGER IF EXISTS herald_gin_on_drop;
CREATE EVENT TRIGGER herald_gin_on_drop ON sql_drop
  WHEN TAG IN ('DROP INDEX') EXECUTE FUNCTION herald_gin_on_drop();

SELECT herald_gin_reconcile_all();
