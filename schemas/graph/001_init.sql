-- graph: follows, follow requests, blocks, the counters, and a projection
-- of identity's users.
--
-- Every relation table is keyed by the pair (primary key), so "does A
-- follow B" is one index probe, and carries its own time-ordered id: the
-- lists are "newest first" by that id, which is also the cursor key, with
-- one index per list order. Times are not stored: an id holds the
-- millisecond it was made at (events' created_at is derived from it).
--
-- counts holds followers_count and following_count, changed in the same
-- transaction as the edge (never COUNT(*) on read). users is graph's own
-- copy of what it needs from identity (username to id, is_private), fed by
-- identity's events; deleted_users remembers deleted ids so a late
-- fallback lookup cannot bring one back.

CREATE TABLE users (
    id          bigint PRIMARY KEY,
    username    text NOT NULL UNIQUE,
    is_private  boolean NOT NULL DEFAULT false
);

CREATE TABLE deleted_users (
    id bigint PRIMARY KEY
);

CREATE TABLE follows (
    id           bigint NOT NULL UNIQUE,
    follower_id  bigint NOT NULL,
    followee_id  bigint NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followers_idx ON follows (followee_id, id DESC);
CREATE INDEX follows_following_idx ON follows (follower_id, id DESC);

CREATE TABLE follow_requests (
    id           bigint NOT NULL UNIQUE,
    follower_id  bigint NOT NULL,
    followee_id  bigint NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follow_requests_followee_idx ON follow_requests (followee_id, id DESC);

CREATE TABLE blocks (
    id          bigint NOT NULL UNIQUE,
    blocker_id  bigint NOT NULL,
    blocked_id  bigint NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocker_idx ON blocks (blocker_id, id DESC);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

CREATE TABLE counts (
    user_id          bigint PRIMARY KEY,
    followers_count  bigint NOT NULL DEFAULT 0,
    following_count  bigint NOT NULL DEFAULT 0
);
