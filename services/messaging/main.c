/*  messaging: direct conversations (1:1 and groups), messages, read state.

    main() hands the method table and the one event it consumes to
    service_main(), which owns workers, connections, migrations, the outbox
    publisher (message.created, conversation.read) and the subscriber.

    identity.user.deleted removes what the user owned: their 1:1
    conversations entirely (both sides: a conversation with nobody on the
    other end has no use), their messages and membership in groups, groups
    left empty, and their idempotency keys. The handler is idempotent:
    every statement deletes by the user's id, so a replay finds nothing
    left to delete.
*/
#include "messaging.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>

static const service_method_t s_methods[] = {
    {"conversations.create", conversations_create},
    {"conversations.list", conversations_list},
    {"conversations.get", conversations_get},
    {"messages.list", messages_list},
    {"messages.send", messages_send},
    {"messages.read", messages_read},
    {"posts.share", posts_share},
    {NULL, NULL},
};

static int s_user_deleted(db_t *db, const event_t *event, void *state)
{
    (void)state;
    const char *id = json_string_value(json_object_get(event->payload, "id"));
    int64_t user_id = 0;
    if (!id || !ids_parse(id, &user_id)) {
        log_warn("user.deleted without a valid id: ignored");
        return 0;
    }
    const char *params[] = {id};
    static const char *const statements[] = {
        "DELETE FROM conversations WHERE NOT is_group AND id IN"
        " (SELECT conversation_id FROM participants WHERE user_id = $1)",
        //  Groups the user is the last member of.
        "DELETE FROM conversations c WHERE c.is_group AND c.id IN"
        " (SELECT conversation_id FROM participants WHERE user_id = $1) AND NOT EXISTS"
        " (SELECT 1 FROM participants p WHERE p.conversation_id = c.id AND p.user_id <> $1)",
        "DELETE FROM messages WHERE sender_id = $1", "DELETE FROM participants WHERE user_id = $1",
        "DELETE FROM idempotency_keys WHERE user_id = $1", NULL};
    for (int i = 0; statements[i]; i++)
        if (db_exec(db, statements[i], 1, params) < 0) return -1;
    return 0;
}

static const events_route_t s_consumes[] = {
    {"identity.user.deleted", s_user_deleted},
    {NULL, NULL},
};

static const char s_usage[] =
    "Direct conversations, messages and read state (services/messaging/README.md).";

int main(int argc, char **argv)
{
    service_def_t def = {
        .name = "messaging",
        .usage = s_usage,
        .methods = s_methods,
        .consumes = s_consumes,
        .produces_events = true,
        .uses_database = true,
        .state = NULL,
    };
    return service_main(&def, argc, argv);
}
