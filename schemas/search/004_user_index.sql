-- search 004: what user search's in-memory trigram index reads to stay
-- fresh (services/search/user_index.h).
--
-- Every search process keeps the users' trigrams in memory and, before a
-- typo search, reads only the accounts changed since it last looked. A
-- process cannot rely on having handled the events itself (several may
-- run; one consumes), so the rows say when they changed: changed_xid is
-- the id of the transaction that inserted the row, or last changed its
-- username or display name (the trigger below), and deleted_users carries
-- the same for deletions. The reader takes rows with changed_xid >= its
-- horizon and moves the horizon to the xmin of the snapshot it read with:
-- transactions below it had all finished, so none of their rows can
-- appear later. An id, unlike a sequence number, tells which transactions
-- may still commit, so a row written by a long transaction is not missed.

ALTER TABLE users ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX users_changed ON users (changed_xid);

ALTER TABLE deleted_users ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX deleted_users_changed ON deleted_users (changed_xid);

-- Followers, privacy and other columns change often and are not indexed:
-- only a new username or display name moves the row.
CREATE FUNCTION search_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

CREATE TRIGGER users_changed BEFORE UPDATE OF username, display_name ON users
    FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username
          OR OLD.display_name IS DISTINCT FROM NEW.display_name)
    EXECUTE FUNCTION search_user_changed();
