-- GET /me/preferences joins the page cache (src/lib/page-cache.ts) as its own kind, `p:` + user id,
-- told by the same statement-level function as the other pages (migration 0015) whenever a
-- user's preferences row is written or deleted, by whatever path: the preferences service, the
-- default model, a deleted credential, an account deletion's cascade, an operator's SQL.
CREATE OR REPLACE FUNCTION warren_page_kind(tbl name) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE tbl WHEN 'sandboxes' THEN 's' WHEN 'activity_log' THEN 'a' WHEN 'user_preferences' THEN 'p' ELSE 'c' END
$$;
--> statement-breakpoint
CREATE TRIGGER user_preferences_pages_insert AFTER INSERT ON user_preferences REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER user_preferences_pages_update AFTER UPDATE ON user_preferences REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
--> statement-breakpoint
CREATE TRIGGER user_preferences_pages_delete AFTER DELETE ON user_preferences REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION warren_notify_pages();
