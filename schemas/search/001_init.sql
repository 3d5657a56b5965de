-- search: projections of users, posts, follow edges, blocks, likes and
-- comments, built only from other services' events (DESIGN.md decision 4),
-- plus hashtag counts kept in time buckets for the tag pages and trends.
--
-- Every table here is a copy the event handlers maintain; none is the source
-- of truth. Counters (followers_count, like_count, comment_count, post_count,
-- bucket counts) change only when the row that justifies them is inserted or
-- deleted (INSERT ... ON CONFLICT DO NOTHING RETURNING, DELETE ... RETURNING),
-- so a handler that runs twice changes nothing the second time.
--
-- Text matching: pg_trgm (typo-tolerant user search, GIN indexes) and
-- unaccent (accent-insensitive matching). unaccent() is only STABLE (its
-- dictionary could change), so search_norm() wraps it as IMMUTABLE with the
-- dictionary named explicitly, which lets generated columns and indexes use
-- it. Both extensions live in public, which is on every service's
-- search_path ("<schema>, public").
--
-- Times: post ids are time-ordered (41 bits of ms since 2025-01-01 above 23
-- bits of shard and sequence), so a post's creation time, its hashtag
-- buckets and its explore score all derive from its id.

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;

-- Lower-cased, accent-free text for matching ("Zoë" -> "zoe").
CREATE FUNCTION search_norm(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;

-- Unix ms at which id was made (ids.h: IDS_EPOCH_MS = 1735689600000).
CREATE FUNCTION search_id_ms(bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ($1 >> 23) + 1735689600000 $$;

-- text with the LIKE wildcards escaped, to build 'prefix%' patterns.
CREATE FUNCTION search_like_escape(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT replace(replace(replace($1, '\', '\\'), '%', '\%'), '_', '\_') $$;

-- ---- accounts and relations ---------------------------------------------

CREATE TABLE users (
    id              bigint PRIMARY KEY,
    username        text NOT NULL,
    display_name    text NOT NULL DEFAULT '',
    name_norm       text GENERATED ALWAYS AS (search_norm(display_name)) STORED,
    is_private      boolean NOT NULL DEFAULT false,
    followers_count integer NOT NULL DEFAULT 0
);
-- Prefix matches (LIKE 'q%') use the btree indexes, fuzzy matches (%, <%)
-- the trigram GIN indexes; "popular accounts" walk users_popular.
CREATE INDEX users_username_prefix ON users (username text_pattern_ops);
CREATE INDEX users_name_prefix ON users (name_norm text_pattern_ops);
CREATE INDEX users_username_trgm ON users USING gin (username gin_trgm_ops);
CREATE INDEX users_name_trgm ON users USING gin (name_norm gin_trgm_ops);
CREATE INDEX users_popular ON users (followers_count DESC, id DESC);

-- Accounts identity deleted: events about them that arrive later (from
-- another producer, e.g. a like media handled before the deletion) are
-- ignored instead of resurrecting rows.
CREATE TABLE deleted_users (
    id bigint PRIMARY KEY
);

-- Approved follows only (a pending request grants nothing).
CREATE TABLE follows (
    follower_id bigint NOT NULL,
    followee_id bigint NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id, follower_id);

CREATE TABLE blocks (
    blocker_id bigint NOT NULL,
    blocked_id bigint NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id, blocker_id);

-- ---- posts ----------------------------------------------------------------

-- hot: the explore score, ln(1 + likes + 2 comments) plus the post's age in
-- units of 12 hours, scaled by 10^6 (docs/search.md). Adding time instead of
-- multiplying by a decay of (now - created) keeps the score independent of
-- the clock: ordering by it equals ordering by a time-decayed engagement,
-- and it changes only when counts change, so it can be indexed and paged.
CREATE TABLE posts (
    id            bigint PRIMARY KEY,
    author_id     bigint NOT NULL,
    caption       text NOT NULL DEFAULT '',
    hashtags      text[] NOT NULL DEFAULT '{}',
    like_count    integer NOT NULL DEFAULT 0,
    comment_count integer NOT NULL DEFAULT 0,
    caption_tsv   tsvector GENERATED ALWAYS AS
                  (to_tsvector('simple'::regconfig, search_norm(caption))) STORED,
    hot           bigint GENERATED ALWAYS AS
                  ((ln(1 + greatest(like_count, 0) + 2 * greatest(comment_count, 0))
                    * 1000000)::bigint
                   + (id >> 23) * 1000000 / 43200000) STORED
);
CREATE INDEX posts_caption_tsv ON posts USING gin (caption_tsv);
CREATE INDEX posts_author ON posts (author_id, id DESC);
CREATE INDEX posts_hot ON posts (hot DESC, id DESC);

CREATE TABLE likes (
    post_id bigint NOT NULL,
    user_id bigint NOT NULL,
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX likes_user ON likes (user_id);

CREATE TABLE comments (
    id        bigint PRIMARY KEY,
    post_id   bigint NOT NULL,
    author_id bigint NOT NULL
);
CREATE INDEX comments_post ON comments (post_id);
CREATE INDEX comments_author ON comments (author_id);

-- ---- hashtags -------------------------------------------------------------

-- One row per (tag, post): the tag page walks (tag, post_id DESC).
CREATE TABLE post_tags (
    tag       text NOT NULL,
    post_id   bigint NOT NULL,
    author_id bigint NOT NULL,
    PRIMARY KEY (tag, post_id)
);
CREATE INDEX post_tags_post ON post_tags (post_id);

-- id orders ties in ranked hashtag lists (a cursor holds two integers).
CREATE TABLE hashtags (
    tag        text PRIMARY KEY,
    id         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    post_count integer NOT NULL DEFAULT 0
);
CREATE INDEX hashtags_prefix ON hashtags (tag text_pattern_ops);

-- Posts per tag per time bucket (bucket_ms: the bucket's start, unix ms).
-- Five-minute buckets serve the 1h trend window, hourly buckets the 24h and
-- 7d windows and their baselines. The (bucket_ms) indexes let the trends
-- query read one time range with an index-only scan.
CREATE TABLE tag_counts_5m (
    tag       text NOT NULL,
    bucket_ms bigint NOT NULL,
    count     integer NOT NULL,
    PRIMARY KEY (tag, bucket_ms)
);
CREATE INDEX tag_counts_5m_time ON tag_counts_5m (bucket_ms, tag) INCLUDE (count);

CREATE TABLE tag_counts_1h (
    tag       text NOT NULL,
    bucket_ms bigint NOT NULL,
    count     integer NOT NULL,
    PRIMARY KEY (tag, bucket_ms)
);
CREATE INDEX tag_counts_1h_time ON tag_counts_1h (bucket_ms, tag) INCLUDE (count);

-- Adds (p_delta > 0) or removes (p_delta < 0) post p_post's use of each tag
-- in p_tags: its post_tags row, the tag's post_count and the tag's buckets at
-- the post's creation time. Only tags whose post_tags row was actually
-- inserted or deleted are counted, so calling it twice is harmless.
CREATE FUNCTION search_tags_apply(p_post bigint, p_author bigint, p_tags text[], p_delta integer)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ms bigint := search_id_ms(p_post);
BEGIN
    IF p_delta > 0 THEN
        WITH changed AS (
            INSERT INTO post_tags (tag, post_id, author_id)
            SELECT DISTINCT t, p_post, p_author FROM unnest(p_tags) AS t WHERE t <> ''
            ON CONFLICT DO NOTHING RETURNING tag),
        h AS (
            INSERT INTO hashtags (tag, post_count) SELECT tag, 1 FROM changed
            ON CONFLICT (tag) DO UPDATE SET post_count = hashtags.post_count + 1),
        b AS (
            INSERT INTO tag_counts_5m (tag, bucket_ms, count)
            SELECT tag, ms - ms % 300000, 1 FROM changed
            ON CONFLICT (tag, bucket_ms) DO UPDATE SET count = tag_counts_5m.count + 1)
        INSERT INTO tag_counts_1h (tag, bucket_ms, count)
        SELECT tag, ms - ms % 3600000, 1 FROM changed
        ON CONFLICT (tag, bucket_ms) DO UPDATE SET count = tag_counts_1h.count + 1;
    ELSE
        WITH changed AS (
            DELETE FROM post_tags WHERE post_id = p_post AND tag = ANY (p_tags) RETURNING tag),
        h AS (
            UPDATE hashtags SET post_count = post_count - 1
            WHERE tag IN (SELECT tag FROM changed)),
        b AS (
            UPDATE tag_counts_5m SET count = count - 1
            WHERE bucket_ms = ms - ms % 300000 AND tag IN (SELECT tag FROM changed))
        UPDATE tag_counts_1h SET count = count - 1
        WHERE bucket_ms = ms - ms % 3600000 AND tag IN (SELECT tag FROM changed);
    END IF;
END $$;

-- Removes post p_post and everything hanging off it (tags and their
-- counts, likes, comments). Returns whether there was such a post.
CREATE FUNCTION search_post_delete(p_post bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    gone record;
BEGIN
    DELETE FROM posts WHERE id = p_post RETURNING author_id, hashtags INTO gone;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM search_tags_apply(p_post, gone.author_id, gone.hashtags, -1);
    DELETE FROM likes WHERE post_id = p_post;
    DELETE FROM comments WHERE post_id = p_post;
    RETURN true;
END $$;

-- Removes everything user p_user owned or did, and remembers the deletion
-- (deleted_users) so later events about the account are ignored.
CREATE FUNCTION search_user_delete(p_user bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    post record;
BEGIN
    INSERT INTO deleted_users (id) VALUES (p_user) ON CONFLICT DO NOTHING;
    FOR post IN SELECT id FROM posts WHERE author_id = p_user LOOP
        PERFORM search_post_delete(post.id);
    END LOOP;
    WITH gone AS (DELETE FROM likes WHERE user_id = p_user RETURNING post_id)
    UPDATE posts p SET like_count = p.like_count - g.n
    FROM (SELECT post_id, count(*) AS n FROM gone GROUP BY post_id) g WHERE p.id = g.post_id;
    WITH gone AS (DELETE FROM comments WHERE author_id = p_user RETURNING post_id)
    UPDATE posts p SET comment_count = p.comment_count - g.n
    FROM (SELECT post_id, count(*) AS n FROM gone GROUP BY post_id) g WHERE p.id = g.post_id;
    WITH gone AS (DELETE FROM follows WHERE follower_id = p_user RETURNING followee_id)
    UPDATE users u SET followers_count = u.followers_count - 1
    FROM gone WHERE u.id = gone.followee_id;
    DELETE FROM follows WHERE followee_id = p_user;
    DELETE FROM blocks WHERE blocker_id = p_user OR blocked_id = p_user;
    DELETE FROM users WHERE id = p_user;
END $$;
