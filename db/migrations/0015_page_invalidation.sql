-- Instances keep recently rendered list pages (src/lib/page-cache.ts). Any change to what those
-- pages show — a user's sandboxes and their add-ons, chat sessions and messages, activity
-- entries — whoever makes it and however (a request, a background job on another instance, the
-- retention job, an operator's SQL), tells every instance at commit, through NOTIFY on one
-- channel. The payload is the kind of page and the owner's user id: `s:` sandboxes (their
-- add-ons too), `c:` chat, `a:` activity; `*` (every page of every user) for the add-on catalogue.
-- Statement-level triggers with transition tables: a bulk write notifies once per user, and
-- PostgreSQL folds identical notifications of one transaction into one.
CREATE OR REPLACE FUNCTION warren_page_kind(tbl name) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE tbl WHEN 'sandboxes' THEN 's' WHEN 'activity_log' THEN 'a' ELSE 'c' END
$$;
--> statement-breakpoint
-- One function for every event: the rows before (UPDATE, DELETE) and after (INSERT, UPDATE) are
-- both told, so an update that moves a row between users (activity_log's user_id set to NULL on
-- account deletion) reaches both. A transition table is read only on the events that have it.
CREATE OR REPLACE FUNCTION warren_notify_pages() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE u text;
BEGIN
  IF TG_OP <> 'INSERT' THEN
    FOR u IN SELECT DISTINCT user_id FROM old_rows WHERE user_id IS NOT NULL LOOP
      PERFORM pg_notify('warren_pages', warren_page_kind(TG_TABLE_NAME) || ':' || u);
    END LOOP;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    FOR u IN SELECT DISTINCT user_id FROM new_rows WHERE user_id IS NOT NULL LOOP
      PERFORM pg_notify('warren_pages', warren_page_kind(TG_TABLE_NAME) || ':' || u);
    END LOOP;
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER sandboxes_pages_insert AFTER INSERT ON sandboxes REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER sandboxes_pages_update AFTER UPDATE ON sandboxes REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER sandboxes_pages_delete AFTER DELETE ON sandboxes REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER chat_sessions_pages_insert AFTER INSERT ON chat_sessions REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER chat_sessions_pages_update AFTER UPDATE ON chat_sessions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER chat_sessions_pages_delete AFTER DELETE ON chat_sessions REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER chat_messages_pages_insert AFTER INSERT ON chat_messages REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER chat_messages_pages_update AFTER UPDATE ON chat_messages REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER chat_messages_pages_delete AFTER DELETE ON chat_messages REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER activity_log_pages_insert AFTER INSERT ON activity_log REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER activity_log_pages_update AFTER UPDATE ON activity_log REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER activity_log_pages_delete AFTER DELETE ON activity_log REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
-- A sandbox's add-ons: the owner is the sandbox's (a cascade from a deleted sandbox is told by
-- the sandbox's own trigger).
CREATE OR REPLACE FUNCTION warren_notify_pages_addons() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE u text;
BEGIN
  IF TG_OP <> 'INSERT' THEN
    FOR u IN SELECT DISTINCT s.user_id FROM old_rows r JOIN sandboxes s ON s.id = r.sandbox_id LOOP
      PERFORM pg_notify('warren_pages', 's:' || u);
    END LOOP;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    FOR u IN SELECT DISTINCT s.user_id FROM new_rows r JOIN sandboxes s ON s.id = r.sandbox_id LOOP
      PERFORM pg_notify('warren_pages', 's:' || u);
    END LOOP;
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER sandbox_addons_pages_insert AFTER INSERT ON sandbox_addons REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages_addons();
--> statement-breakpoint
CREATE TRIGGER sandbox_addons_pages_update AFTER UPDATE ON sandbox_addons REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages_addons();
--> statement-breakpoint
CREATE TRIGGER sandbox_addons_pages_delete AFTER DELETE ON sandbox_addons REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages_addons();
--> statement-breakpoint
-- Which add-ons run a service shows in every sandbox: a catalogue change is told to all.
CREATE OR REPLACE FUNCTION warren_notify_pages_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('warren_pages', '*');
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER container_addons_pages AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON container_addons
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages_all();
