-- feed: home timelines (fan-out on write with a pull path for large
-- accounts), activity on a user's content, and what a user did.
--
-- Everything here is a projection of other services' events (graph and
-- media, identity for deletions): the feed never asks another service what
-- its tables should hold, so every handler is a few statements inside the
-- event's offset transaction. Ids are the producers' ids (bigint); times
-- are unix milliseconds (bigint) so sort keys and cursors are exact
-- integers.

-- ---- projections ------------------------------------------------------

-- Follow edges (approved follows only: graph emits follow.created when a
-- follow takes effect, also on approval of a request).
CREATE TABLE follows (
    follower_id bigint NOT NULL,
    followee_id bigint NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
-- Fan-out reads the followers of an author.
CREATE INDEX follows_followee_idx ON follows (followee_id, follower_id);

-- Followers per author, kept with the edges: tells fan-out whether an
-- author is above FEED_FANOUT_THRESHOLD.
CREATE TABLE follower_counts (
    user_id   bigint PRIMARY KEY,
    followers integer NOT NULL DEFAULT 0
);

-- Blocks either way (activity from a blocked user is not recorded).
CREATE TABLE blocks (
    blocker_id bigint NOT NULL,
    blocked_id bigint NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

-- Deleted accounts: ids are never reused, so events about a deleted user
-- that arrive late from another producer are recognised and ignored.
CREATE TABLE deleted_users (
    user_id bigint PRIMARY KEY
);

-- Post metadata. fanned_out: the post was pushed into the followers'
-- timelines when it was created; when false (its author was above the
-- threshold) it is merged in at read time from here.
CREATE TABLE posts (
    id         bigint PRIMARY KEY,
    author_id  bigint NOT NULL,
    fanned_out boolean NOT NULL
);
-- Backfill on follow and the deep-page pull: an author's newest posts.
CREATE INDEX posts_author_idx ON posts (author_id, id DESC);
-- The read-time merge touches only posts that were not pushed.
CREATE INDEX posts_pull_idx ON posts (author_id, id DESC) WHERE NOT fanned_out;

-- Authors with at least one post that was not fanned out: the read path
-- joins a reader's follows with this (small) table only.
CREATE TABLE pull_authors (
    author_id bigint PRIMARY KEY
);

-- ---- timelines ------------------------------------------------------------

-- One row per (reader, post). Invariant kept by every handler: a row
-- (u, p, a) exists only when u = a or u follows a; so removing a post or an
-- author from timelines only visits the author's followers. The primary
-- key makes replays idempotent and serves the page query (keyset on
-- post_id descending).
CREATE TABLE timeline (
    user_id   bigint NOT NULL,
    post_id   bigint NOT NULL,
    author_id bigint NOT NULL,
    PRIMARY KEY (user_id, post_id)
);

-- Timelines are trimmed to their newest FEED_TIMELINE_MAX rows; floor_id is
-- the newest post id ever trimmed away from this user's timeline, below
-- which pages are pulled from posts instead.
CREATE TABLE timeline_floor (
    user_id  bigint PRIMARY KEY,
    floor_id bigint NOT NULL
);

-- ---- activity -----------------------------------------------------------

-- One group per (owner, type, post, UTC day): "ann, bob and 3 others liked
-- your post". post_id is 0 for types without a post (follow,
-- follow_request). Listed newest first by (latest_ms, id).
CREATE TABLE activity_groups (
    id          bigint PRIMARY KEY,
    owner_id    bigint NOT NULL,
    type        text NOT NULL
                CHECK (type IN ('like', 'comment', 'follow', 'follow_request', 'mention')),
    post_id     bigint NOT NULL DEFAULT 0,
    day         integer NOT NULL, -- days since 1970-01-01 (UTC)
    latest_ms   bigint NOT NULL,
    actor_count integer NOT NULL DEFAULT 0,
    UNIQUE (owner_id, type, post_id, day)
);
CREATE INDEX activity_groups_list_idx ON activity_groups (owner_id, latest_ms DESC, id DESC);
CREATE INDEX activity_groups_post_idx ON activity_groups (post_id) WHERE post_id <> 0;
-- Groups left without actors (deleted in the same transaction that empties
-- them); the partial index keeps that sweep an index lookup.
CREATE INDEX activity_groups_empty_idx ON activity_groups (id) WHERE actor_count <= 0;

-- Distinct actors of a group, newest first (the "up to 3 actors").
CREATE TABLE activity_actors (
    group_id   bigint NOT NULL REFERENCES activity_groups (id) ON DELETE CASCADE,
    actor_id   bigint NOT NULL,
    latest_ms  bigint NOT NULL,
    PRIMARY KEY (group_id, actor_id)
);
CREATE INDEX activity_actors_recent_idx ON activity_actors (group_id, latest_ms DESC, actor_id DESC);
CREATE INDEX activity_actors_actor_idx ON activity_actors (actor_id);

-- What put an actor into a group: source_id is the comment id (comments,
-- mentions in comments), the post id (mentions in captions) or 0 (likes,
-- follows, requests: one per actor). An actor leaves a group when its last
-- source goes; the key makes replays idempotent.
CREATE TABLE activity_sources (
    group_id  bigint NOT NULL REFERENCES activity_groups (id) ON DELETE CASCADE,
    actor_id  bigint NOT NULL,
    source_id bigint NOT NULL,
    PRIMARY KEY (group_id, actor_id, source_id)
);
CREATE INDEX activity_sources_source_idx ON activity_sources (source_id) WHERE source_id <> 0;
CREATE INDEX activity_sources_actor_idx ON activity_sources (actor_id);

-- ---- interactions ---------------------------------------------------------

-- Posts a user liked, newest like first.
CREATE TABLE my_likes (
    user_id  bigint NOT NULL,
    post_id  bigint NOT NULL,
    liked_ms bigint NOT NULL,
    PRIMARY KEY (user_id, post_id)
);
CREATE INDEX my_likes_list_idx ON my_likes (user_id, liked_ms DESC, post_id DESC);
CREATE INDEX my_likes_post_idx ON my_likes (post_id);

-- Comments a user wrote (what the comment object needs).
CREATE TABLE my_comments (
    id         bigint PRIMARY KEY,
    author_id  bigint NOT NULL,
    post_id    bigint NOT NULL,
    text       text NOT NULL,
    created_ms bigint NOT NULL
);
CREATE INDEX my_comments_list_idx ON my_comments (author_id, id DESC);
CREATE INDEX my_comments_post_idx ON my_comments (post_id);
