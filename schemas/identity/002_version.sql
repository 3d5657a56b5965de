-- A version of each account row, bumped by every change that emits
-- user.updated and carried in its payload (docs/contracts.md). It lets a
-- consumer that also hears of a change another way order the two: graph
-- takes a privacy switch straight from PATCH /me (users.privacy) before
-- the event arrives, and must not let an older user.updated still in
-- flight set the old value back. The row lock of the UPDATE makes the
-- versions of one account strictly increasing in commit order.
ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 0;
