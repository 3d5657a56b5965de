/*  notification: notifications made from events, unread counts, and the
    notification.push events the gateways turn into WebSocket frames.

    main() hands the method table and the event routes to service_main(),
    which owns workers, connections, migrations, the outbox publisher
    (notification.push) and the subscriber (media, graph, messaging and
    identity events; see consumers.c for what each does).
*/
#include "notification.h"

static const service_method_t s_methods[] = {
    {"notifications.list", notifications_list},
    {"notifications.unread_count", notifications_unread_count},
    {"notifications.read", notifications_read},
    {"notifications.unread", notifications_unread},
    {NULL, NULL},
};

static const events_route_t s_consumes[] = {
    {"media.post.created", on_post_created},
    {"media.post.updated", on_post_created},
    {"media.post.deleted", on_post_deleted},
    {"media.like.created", on_like_created},
    {"media.like.deleted", on_like_deleted},
    {"media.comment.created", on_comment_created},
    {"media.comment.deleted", on_comment_deleted},
    {"graph.follow.created", on_follow_created},
    {"graph.follow.requested", on_follow_requested},
    {"graph.follow.request_deleted", on_follow_request_deleted},
    {"graph.follow.accepted", on_follow_accepted},
    {"graph.block.created", on_block_created},
    {"graph.block.deleted", on_block_deleted},
    {"messaging.message.created", on_message_created},
    {"messaging.conversation.read", on_conversation_read},
    {"identity.user.deleted", on_user_deleted},
    //  The hot handlers buffer their rows and every handler queues its
    //  pushes; both are written once per batch (consumers.c, push.c).
    {EVENTS_BATCH_END, on_batch_end},
    {EVENTS_BATCH_RESET, on_batch_reset},
    {NULL, NULL},
};

static const char s_usage[] =
    "Notifications, unread counts and live pushes (services/notification/README.md).";

int main(int argc, char **argv)
{
    service_def_t def = {
        .name = "notification",
        .usage = s_usage,
        .methods = s_methods,
        .consumes = s_consumes,
        .produces_events = true,
        .uses_database = true,
        .state = NULL,
    };
    return service_main(&def, argc, argv);
}
