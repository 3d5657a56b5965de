-- notification 002: unread counts kept as counters, in step with the rows.
--
-- Every unread_count frame, the unread_count RPC and the gateway's first
-- frame used to count(*) the unread notifications and unread messages of
-- their users. A popular account has thousands of unread notifications, so
-- the count grew with the pile: under the like benchmark it was one of the
-- costliest statements of the whole like path (docs/benchmarks.md). Now
-- unread_counts holds, per user, how many notifications are unread and how
-- many unread_messages rows there are; a read is one primary key lookup. A
-- missing row means 0 and 0: the back-fill makes rows only for users with
-- something unread, the triggers on a user's first unread thing, and rows
-- are never removed (a user back at 0 and 0 keeps a row of zeros).
--
-- Kept by triggers, not by the service's code: every writer of the two
-- tables (consumers.c's batched statements, notifications.read, an operator
-- in psql, an old instance still running during a rolling restart) moves
-- the counter in the same transaction as the rows, and nothing can forget.
--
-- Statement-level triggers with transition tables, not row-level: the
-- consumers write a whole run of events with one statement (hundreds of
-- rows for many users), and a row trigger would upsert a counter once per
-- row. Here a statement costs one aggregated upsert: the rows it inserted,
-- updated or deleted, as +1 / -1 per unread row, summed per user; users
-- whose sum is 0 (an UPDATE that leaves read alone) are skipped, so such a
-- statement takes no counter lock. The upsert goes in user_id order, so
-- two statements that move the counters of the same users lock them in the
-- same order. (That cannot order locks across the several statements of
-- one transaction: two transactions may still meet in opposite orders, as
-- on any rows; Postgres then aborts one, and notifications.read takes its
-- user's counter first to stay out of that, see notifications.c.)
--
-- Why it cannot go negative, so the readers need no greatest(0, ...): the
-- back-fill below sets every counter to count(*) while the two tables are
-- locked against writers; from then on each statement adds exactly the
-- change it made to the unread rows (a transition table holds the rows the
-- statement really changed, after any wait on a concurrent writer), and
-- the upsert adds to the newest committed counter under its row lock, so
-- the committed counter is always the committed count(*) and a statement
-- never subtracts more than the rows it removed. What bypasses triggers
-- breaks this: ALTER TABLE ... DISABLE TRIGGER, session_replication_role =
-- replica, a data-only restore with --disable-triggers. Nothing in the
-- code does any of these, nor TRUNCATE (grep), but a TRUNCATE by hand is
-- counted too (the counters go to 0). To rebuild the counters after such a
-- repair, run the back-fill again after deleting the rows of unread_counts.
--
-- The functions name unread_counts without a schema, as every statement of
-- the service does: they run with the session's search_path ("<schema>,
-- public", db.c). A session without the schema on its path fails loudly
-- (no such table) rather than miscounting.

CREATE TABLE unread_counts (
    user_id       bigint PRIMARY KEY,
    notifications bigint NOT NULL DEFAULT 0,
    messages      bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50); -- a popular user's row changes with every batch: room for HOT updates

-- Writers wait from here to the commit, so the back-fill and the triggers
-- start from the same rows (the lock CREATE TRIGGER takes anyway, taken
-- before the counts rather than after them).
LOCK TABLE notifications, unread_messages IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO unread_counts (user_id, notifications, messages)
SELECT user_id, sum(notifications), sum(messages)
FROM (SELECT user_id, count(*) AS notifications, 0 AS messages
      FROM notifications WHERE NOT read GROUP BY user_id
      UNION ALL
      SELECT user_id, 0, count(*) FROM unread_messages GROUP BY user_id) counts
GROUP BY user_id;

-- notifications: +1 for each unread row that appears (inserted, or updated
-- to unread), -1 for each that goes (deleted, or updated to read).
CREATE FUNCTION unread_notifications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE unread_counts SET notifications = 0 WHERE notifications <> 0;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO unread_counts AS c (user_id, notifications)
        SELECT user_id, count(*) FROM new_rows WHERE NOT read GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET notifications = c.notifications + excluded.notifications;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO unread_counts AS c (user_id, notifications)
        SELECT user_id, -count(*) FROM old_rows WHERE NOT read GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET notifications = c.notifications + excluded.notifications;
    ELSE
        -- Per user, not per row: an UPDATE may in principle move a row to
        -- another user_id, and one that leaves read as it was sums to 0.
        INSERT INTO unread_counts AS c (user_id, notifications)
        SELECT user_id, sum(delta)
        FROM (SELECT user_id, -1 AS delta FROM old_rows WHERE NOT read
              UNION ALL
              SELECT user_id, 1 FROM new_rows WHERE NOT read) changes
        GROUP BY user_id HAVING sum(delta) <> 0 ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET notifications = c.notifications + excluded.notifications;
    END IF;
    RETURN NULL;
END $$;

-- unread_messages: every row is an unread message, +1 in, -1 out.
CREATE FUNCTION unread_messages_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE unread_counts SET messages = 0 WHERE messages <> 0;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO unread_counts AS c (user_id, messages)
        SELECT user_id, count(*) FROM new_rows GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET messages = c.messages + excluded.messages;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO unread_counts AS c (user_id, messages)
        SELECT user_id, -count(*) FROM old_rows GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET messages = c.messages + excluded.messages;
    ELSE
        INSERT INTO unread_counts AS c (user_id, messages)
        SELECT user_id, sum(delta)
        FROM (SELECT user_id, -1 AS delta FROM old_rows
              UNION ALL
              SELECT user_id, 1 FROM new_rows) changes
        GROUP BY user_id HAVING sum(delta) <> 0 ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET messages = c.messages + excluded.messages;
    END IF;
    RETURN NULL;
END $$;

-- Postgres allows transition tables only on a trigger of one event and no
-- column list, hence one trigger per event (and UPDATE of any column).
CREATE TRIGGER unread_notifications_inserted AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unread_notifications_changed();
CREATE TRIGGER unread_notifications_updated AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unread_notifications_changed();
CREATE TRIGGER unread_notifications_deleted AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unread_notifications_changed();
CREATE TRIGGER unread_notifications_truncated AFTER TRUNCATE ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION unread_notifications_changed();

CREATE TRIGGER unread_messages_inserted AFTER INSERT ON unread_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unread_messages_changed();
CREATE TRIGGER unread_messages_updated AFTER UPDATE ON unread_messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unread_messages_changed();
CREATE TRIGGER unread_messages_deleted AFTER DELETE ON unread_messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unread_messages_changed();
CREATE TRIGGER unread_messages_truncated AFTER TRUNCATE ON unread_messages
    FOR EACH STATEMENT EXECUTE FUNCTION unread_messages_changed();
