-- search 002: prefix matching of users through user_terms.
--
-- 001 matched prefixes with two text_pattern_ops btrees (username, display
-- name) and a trigram LIKE '% q%' for words of the display name, then sorted
-- every match. On 100,000 accounts sharing a prefix ("bench_u…", "Bench
-- User …") that reads and sorts them all. user_terms holds one row per term
-- a user can be found by (the username, the normalised display name and
-- each word of it) in one btree in byte order (COLLATE "C", whatever the
-- database's collation), so every prefix is a range walked in index order
-- and a page reads only the rows it needs. The user.created/updated handler
-- rewrites a user's terms; this file fills them for users already here.

CREATE TABLE user_terms (
    term    text COLLATE "C" NOT NULL,
    user_id bigint NOT NULL,
    PRIMARY KEY (term, user_id)
);
CREATE INDEX user_terms_user ON user_terms (user_id);

INSERT INTO user_terms (term, user_id)
SELECT DISTINCT term, u.id
FROM users u,
     LATERAL (SELECT u.username UNION ALL SELECT u.name_norm
              UNION ALL SELECT regexp_split_to_table(u.name_norm, '\s+')) AS t(term)
WHERE term <> '';

DROP INDEX users_username_prefix;
DROP INDEX users_name_prefix;

-- As in 001, and the deleted user's terms go too.
CREATE OR REPLACE FUNCTION search_user_delete(p_user bigint) RETURNS void LANGUAGE plpgsql AS $$
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
    DELETE FROM user_terms WHERE user_id = p_user;
    DELETE FROM users WHERE id = p_user;
END $$;
