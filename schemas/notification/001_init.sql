-- notification: notifications made from other services' events, and the
-- projections the rules need.
--
-- source_key names the event a notification came from ("like:<actor>:<post>",
-- "comment:<id>", "follow:<follower>" ...), unique per recipient, so a
-- replayed event inserts nothing new (ON CONFLICT DO NOTHING) and a
-- notification can be found again to be removed (an unlike, a cancelled
-- request).
--
-- blocks is graph's block list (block.created/deleted): no notification is
-- made between two people when either blocked the other.
--
-- unread_messages holds, per recipient, the messages they have not read yet
-- (message.created adds, conversation.read removes up to the message read),
-- so the live unread_count frame can say how many messages wait without
-- asking messaging.

CREATE TABLE notifications (
    id              bigint PRIMARY KEY,
    user_id         bigint NOT NULL,
    type            text NOT NULL CHECK (type IN ('like', 'comment', 'follow', 'follow_request',
                                                  'follow_accepted', 'mention', 'message')),
    actor_id        bigint NOT NULL,
    post_id         bigint,
    comment_id      bigint,
    conversation_id bigint,
    text            text,
    source_key      text NOT NULL,
    read            boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, source_key)
);

CREATE INDEX notifications_user_idx ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id, id) WHERE NOT read;
CREATE INDEX notifications_actor_idx ON notifications (actor_id);
CREATE INDEX notifications_post_idx ON notifications (post_id) WHERE post_id IS NOT NULL;
CREATE INDEX notifications_comment_idx ON notifications (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX notifications_conversation_idx ON notifications (user_id, conversation_id)
    WHERE conversation_id IS NOT NULL AND NOT read;

CREATE TABLE blocks (
    blocker_id bigint NOT NULL,
    blocked_id bigint NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);

CREATE INDEX blocks_blocked_idx ON blocks (blocked_id);

CREATE TABLE unread_messages (
    user_id         bigint NOT NULL,
    conversation_id bigint NOT NULL,
    message_id      bigint NOT NULL,
    sender_id       bigint NOT NULL,
    PRIMARY KEY (user_id, conversation_id, message_id)
);

CREATE INDEX unread_messages_sender_idx ON unread_messages (sender_id);
