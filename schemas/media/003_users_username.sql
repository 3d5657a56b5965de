-- The profile grid (posts.by_user) finds its account by username in the
-- users projection before asking identity (services/media/posts.c,
-- posts_by_user). Not unique: identity emits a deletion before any later
-- account can take the name, and events of one producer are handled in
-- order, so two rows with one name can only meet for the length of a
-- transaction; the lookup takes the newest.
CREATE INDEX users_username_idx ON users (username);
