-- identity: accounts, credentials, profiles and refresh tokens.
--
-- Usernames are stored lower-case (the service lower-cases before it
-- validates), so a plain unique constraint makes them case-insensitively
-- unique. Emails are stored as given and unique on lower(email).
-- Refresh tokens are stored only as the SHA-256 of the opaque token, so a
-- copy of this table cannot be replayed; family_id groups every token
-- descended from one login, which is what reuse detection revokes.

CREATE TABLE users (
    id            bigint PRIMARY KEY,
    username      text NOT NULL UNIQUE
                  CHECK (username ~ '^[a-z0-9._]{1,30}$'),
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    bio           text NOT NULL DEFAULT '',
    website       text NOT NULL DEFAULT '',
    is_private    boolean NOT NULL DEFAULT false,
    avatar_key    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE refresh_tokens (
    id          bigint PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   bigint NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);

CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
