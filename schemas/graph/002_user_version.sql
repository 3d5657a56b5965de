-- The version of identity's account row (identity.user.updated's
-- "version", or users.privacy's) that the users projection's is_private
-- comes from. A change is applied only when its version is at least this
-- one, so the direct call of PATCH /me and the later event can arrive in
-- either order (services/graph/users.c).
ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 0;
