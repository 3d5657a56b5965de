-- The version of identity's account row this projection row holds
-- (identity.user.updated's "version"). identity also hands media each
-- change of an account directly (users.sync) before it answers, so that
-- the author's own next read shows it; the event follows later. A change
-- applies only over an older version, so the two can come in either order
-- (services/media/accounts.c).
ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 0;
