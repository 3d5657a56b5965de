/*  graph: follows, follow requests, blocks and their counters.

    main() hands the method table and the identity events graph consumes to
    service_main(), which owns the workers, the database connections, the
    migrations (schemas/graph/), the outbox publisher and the subscriber.
    The service has no settings of its own. See README.md for the methods
    and the events, graph.h for how the files divide the work and the
    locking order every change follows.
*/
#include "graph.h"

json_t *graph_seed(call_t *call); // seed.c: benchmarks only (GRAPH_SEED_ENABLED=1)

static const service_method_t s_methods[] = {
    {"follows.create", follows_create},
    {"follows.delete", follows_delete},
    {"follows.followers", follows_followers},
    {"follows.following", follows_following},
    {"follows.following_ids", follows_following_ids},
    {"requests.list", requests_list},
    {"requests.approve", requests_approve},
    {"requests.deny", requests_deny},
    {"blocks.create", blocks_create},
    {"blocks.delete", blocks_delete},
    {"blocks.list", blocks_list},
    {"relations.batch", relations_batch},
    {"relations.visible", relations_visible},
    {"users.privacy", users_privacy},
    {"graph.seed", graph_seed},
    {NULL, NULL},
};

static const events_route_t s_consumes[] = {
    {"identity.user.created", users_on_created},
    {"identity.user.updated", users_on_updated},
    {"identity.user.deleted", users_on_deleted},
    {NULL, NULL},
};

static const char s_usage[] =
    "Follows, follow requests, blocks and their counters (services/graph/README.md).\n"
    "Consumes identity's user events into a local projection of users.";

int main(int argc, char **argv)
{
    service_def_t def = {
        .name = "graph",
        .usage = s_usage,
        .methods = s_methods,
        .consumes = s_consumes,
        .produces_events = true,
        .uses_database = true,
        .state = NULL,
        .on_start = NULL,
        .config_names = (const char *const[]){"GRAPH_SEED_ENABLED", NULL},
    };
    return service_main(&def, argc, argv);
}
