-- Instances cache verified sessions for a few seconds (src/auth/session-cache.ts). Any change to a
-- session or its user (sign-out, revocation, refresh, account deletion by cascade, a new name),
-- whoever makes it and however (Better Auth, Warren's services, an operator's SQL), tells every
-- instance at commit, through NOTIFY on one channel. Payloads carry row ids, never tokens.
CREATE OR REPLACE FUNCTION warren_notify_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('warren_auth', 's:' || OLD.id);
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION warren_notify_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('warren_auth', 'u:' || OLD.id);
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER sessions_notify_change AFTER UPDATE OR DELETE ON sessions
  FOR EACH ROW EXECUTE FUNCTION warren_notify_session_change();
--> statement-breakpoint
CREATE TRIGGER users_notify_change AFTER UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION warren_notify_user_change();
--> statement-breakpoint
-- The preferences document's version changes by several paths (the preferences service, the
-- default model, deleting a credential, the legacy import): every one of them reaches the user's
-- open event streams on every instance, at commit, without each writer having to remember it.
CREATE OR REPLACE FUNCTION warren_notify_preferences_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Version 0 is the placeholder row the preferences service inserts, then locks and updates.
  IF NEW.version = 0 OR (TG_OP = 'UPDATE' AND NEW.version = OLD.version) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('warren_changes', json_build_object('t', 'preferences', 'u', NEW.user_id, 'v', NEW.version)::text);
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER user_preferences_notify_change AFTER INSERT OR UPDATE ON user_preferences
  FOR EACH ROW EXECUTE FUNCTION warren_notify_preferences_change();
