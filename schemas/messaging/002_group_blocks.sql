-- messaging: blocks inside groups.
--
-- A 1:1 with a block either way takes no new messages (404). A group keeps
-- working for everyone else, so a message sent into a group while its
-- sender and some member are blocked either way is hidden from that member
-- for good: hidden_from lists them, fixed when the message is sent (like a
-- 1:1, a block does not rewrite history, and unblocking does not deliver
-- what was sent meanwhile). Readers filter on it: the message list, the
-- last message and the unread count of a conversation, read receipts.
-- Almost every row keeps the empty default, which costs no storage per row
-- beyond the array header and no rewrite of the table (a constant default).

ALTER TABLE messages ADD COLUMN hidden_from bigint[] NOT NULL DEFAULT '{}';
