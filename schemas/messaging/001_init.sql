-- messaging: conversations, their participants and read state, messages,
-- and the idempotency keys of sends.
--
-- A 1:1 conversation has pair_key "<smaller id>:<larger id>" (unique), so
-- starting one with the same person again finds the existing row even when
-- both start it at the same moment; groups have no pair_key.
--
-- "Most recent activity first" is by activity_id: the id of the last
-- message, or the conversation's own id while it has none (ids are
-- time-ordered and unique, so activity ids never tie). It is copied into
-- each participant's row, so a user's list is one index range scan on
-- (user_id, activity_id DESC) and the cursor is the last activity_id.
--
-- Unread state is one number per participant: last_read_id. A message
-- counts as unread for me when its id is above my last_read_id and someone
-- else sent it; counting uses messages (conversation_id, id).

CREATE TABLE conversations (
    id            bigint PRIMARY KEY,
    is_group      boolean NOT NULL,
    pair_key      text UNIQUE,
    created_by    bigint NOT NULL,
    activity_id   bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (is_group = (pair_key IS NULL))
);

CREATE TABLE participants (
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL,
    last_read_id    bigint NOT NULL DEFAULT 0,
    activity_id     bigint NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);

CREATE UNIQUE INDEX participants_user_activity_idx ON participants (user_id, activity_id DESC);

CREATE TABLE messages (
    id              bigint PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id       bigint NOT NULL,
    text            text NOT NULL DEFAULT '',
    post_id         bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_conversation_idx ON messages (conversation_id, id DESC);
CREATE INDEX messages_sender_idx ON messages (sender_id);

-- Idempotency-Key of POST /conversations/{id}/messages: the first result for
-- (user, key) within 24 hours. Older rows are ignored and pruned.
CREATE TABLE idempotency_keys (
    user_id    bigint NOT NULL,
    key        text NOT NULL,
    message_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
