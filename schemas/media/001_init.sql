-- media: posts, their images, likes, comments, saves, and the image files.
--
-- Counters. like_count and comment_count live on the post row and are
-- changed in the same transaction as the like or comment row, so the row
-- lock of the UPDATE serializes concurrent likers: the count is exact.
-- author_stats.posts_count serves posts.counts without counting rows.
--
-- Lists. Every list order has its index: a profile's grid (author_id, id),
-- comments oldest first (post_id, id), likers newest first (post_id, id),
-- saved posts newest first by save time (user_id, id). A like or a save
-- gets its own time-ordered id when it is made, which is what its list is
-- ordered and paged by.
--
-- Files. A stored key is referenced by an upload (an image processed but
-- not yet in a post: kept 24 hours), a post image (full and
-- thumbnail), or an avatar. When a reference goes, its key is queued in
-- gc_queue in the same transaction; the collector deletes a queued key's
-- file once no reference is left (files.c holds the locking rules).

CREATE TABLE files (
    key          text PRIMARY KEY,
    content_type text NOT NULL,
    size         integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE uploads (
    id         bigint PRIMARY KEY,
    user_id    bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('post', 'avatar')),
    key        text NOT NULL,
    thumb_key  text,
    width      integer NOT NULL,
    height     integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_user_idx ON uploads (user_id);
CREATE INDEX uploads_key_idx ON uploads (key);
CREATE INDEX uploads_thumb_key_idx ON uploads (thumb_key);
CREATE INDEX uploads_created_idx ON uploads (created_at);

CREATE TABLE posts (
    id            bigint PRIMARY KEY,
    author_id     bigint NOT NULL,
    caption       text NOT NULL DEFAULT '',
    hashtags      text[] NOT NULL DEFAULT '{}',
    mention_ids   bigint[] NOT NULL DEFAULT '{}',
    mention_names text[] NOT NULL DEFAULT '{}',
    like_count    integer NOT NULL DEFAULT 0 CHECK (like_count >= 0),
    comment_count integer NOT NULL DEFAULT 0 CHECK (comment_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_author_idx ON posts (author_id, id DESC);

CREATE TABLE post_images (
    post_id   bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    position  smallint NOT NULL,
    key       text NOT NULL,
    thumb_key text NOT NULL,
    width     integer NOT NULL,
    height    integer NOT NULL,
    alt_text  text NOT NULL DEFAULT '',
    PRIMARY KEY (post_id, position)
);
CREATE INDEX post_images_key_idx ON post_images (key);
CREATE INDEX post_images_thumb_key_idx ON post_images (thumb_key);

CREATE TABLE likes (
    post_id    bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL,
    id         bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id)
);
CREATE UNIQUE INDEX likes_post_order_idx ON likes (post_id, id DESC);
CREATE INDEX likes_user_idx ON likes (user_id, id DESC);

CREATE TABLE comments (
    id            bigint PRIMARY KEY,
    post_id       bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id     bigint NOT NULL,
    text          text NOT NULL,
    mention_ids   bigint[] NOT NULL DEFAULT '{}',
    mention_names text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_post_idx ON comments (post_id, id);
CREATE INDEX comments_author_idx ON comments (author_id);

CREATE TABLE saves (
    user_id    bigint NOT NULL,
    post_id    bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    id         bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, post_id)
);
CREATE UNIQUE INDEX saves_user_order_idx ON saves (user_id, id DESC);
CREATE INDEX saves_post_idx ON saves (post_id);

CREATE TABLE author_stats (
    author_id   bigint PRIMARY KEY,
    posts_count integer NOT NULL DEFAULT 0 CHECK (posts_count >= 0)
);

-- The avatar identity currently shows for a user (learnt from
-- identity.user.updated, in event order).
CREATE TABLE avatars (
    user_id bigint PRIMARY KEY,
    key     text NOT NULL
);
CREATE INDEX avatars_key_idx ON avatars (key);

CREATE TABLE gc_queue (
    key       text PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key records: the first reply to (user, key), for 24 hours.
CREATE TABLE idempotency (
    user_id    bigint NOT NULL,
    key        text NOT NULL,
    scope      text NOT NULL,
    reply      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_created_idx ON idempotency (created_at);
