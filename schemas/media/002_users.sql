-- media's projection of identity's accounts, built from identity.user.*
-- events (services/media/accounts.c).
--
-- Why: every page of posts, comments and likers shows its authors
-- (username, avatar) and the visibility rule needs is_private. Asking
-- identity's users.batch for them cost one RPC and one query per page
-- (a quarter of the work of a feed page, docs/benchmarks.md); reading
-- them here is a primary-key probe in media's own database.
--
-- Invariant: a row is identity's state as of the last identity.user.*
-- event media handled (events of one producer arrive in order). A user
-- with no row yet (an event still in flight, or an account older than
-- this table) is asked of identity as before (render.c), so a missing
-- row costs time, never correctness.
CREATE TABLE users (
    id           bigint PRIMARY KEY,
    username     text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    bio          text NOT NULL DEFAULT '',
    website      text NOT NULL DEFAULT '',
    avatar_key   text,
    is_private   boolean NOT NULL DEFAULT false
);
