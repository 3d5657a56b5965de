/*  feed: home timelines, activity and interactions (services/feed/README.md).

    main() reads the feed settings into one feed_t (setting the defaults
    into the environment so the config log line shows the values in use)
    and hands the method table and the event routes to service_main(),
    which runs the workers, the database connections, the migrations and
    the event subscriber. The feed produces no events.
*/
#include "feed.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

static feed_t s_feed;

static const service_method_t s_methods[] = {
    {"timeline.get", timeline_get},
    {"activity.list", activity_list},
    {"interactions.list", interactions_list},
    {NULL, NULL},
};

static const events_route_t s_consumes[] = {
    {"graph.follow.created", fanout_on_follow_created},
    {"graph.follow.deleted", fanout_on_follow_deleted},
    {"graph.follow.requested", fanout_on_follow_requested},
    {"graph.follow.request_deleted", fanout_on_follow_request_deleted},
    {"graph.block.created", fanout_on_block_created},
    {"graph.block.deleted", fanout_on_block_deleted},
    {"media.post.created", fanout_on_post_created},
    {"media.post.updated", fanout_on_post_updated},
    {"media.post.deleted", fanout_on_post_deleted},
    {"media.like.created", interactions_on_like_created},
    {"media.like.deleted", interactions_on_like_deleted},
    {"media.comment.created", interactions_on_comment_created},
    {"media.comment.deleted", interactions_on_comment_deleted},
    {"identity.user.deleted", fanout_on_user_deleted},
    //  Deferred events (likes, comments, follows, posts) and activity_add's
    //  group counts are written once per batch (activity.c).
    {EVENTS_BATCH_END, activity_flush},
    {EVENTS_BATCH_RESET, activity_forget},
    {NULL, NULL},
};

static const char *const s_config_names[] = {
    "FEED_FANOUT_THRESHOLD",
    "FEED_TIMELINE_MAX",
    "FEED_BACKFILL",
    NULL,
};

static const char s_usage[] =
    "Home timelines (fan-out on write, pull for large accounts), activity and\n"
    "interactions, kept from graph, media and identity events\n"
    "(services/feed/README.md).\n"
    "\n"
    "Feed settings:\n"
    "  FEED_FANOUT_THRESHOLD  authors with more followers are merged at read time\n"
    "                         instead of fanned out (default 10000)\n"
    "  FEED_TIMELINE_MAX      rows kept per timeline; older pages are pulled\n"
    "                         (default 1000, at least 100)\n"
    "  FEED_BACKFILL          posts of a new followee copied into the follower's\n"
    "                         timeline (default 50, at most 1000)";

//  The variable as a whole number in [min, max], else fallback (also put
//  into the environment so config_log shows it).
static int64_t s_setting(const char *name, int64_t fallback, int64_t min, int64_t max)
{
    int64_t value = config_int(name, fallback);
    if (value < min || value > max) value = fallback;
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)value);
    setenv(name, text, 1);
    return value;
}

int main(int argc, char **argv)
{
    s_feed.fanout_threshold =
        s_setting("FEED_FANOUT_THRESHOLD", FEED_DEFAULT_FANOUT_THRESHOLD, 0, INT32_MAX);
    s_feed.timeline_max = s_setting("FEED_TIMELINE_MAX", FEED_DEFAULT_TIMELINE_MAX, 100, 100000);
    s_feed.backfill = s_setting("FEED_BACKFILL", FEED_DEFAULT_BACKFILL, 0, 1000);

    service_def_t def = {
        .name = "feed",
        .usage = s_usage,
        .methods = s_methods,
        .consumes = s_consumes,
        .produces_events = false,
        .uses_database = true,
        .state = &s_feed,
        .config_names = s_config_names,
    };
    return service_main(&def, argc, argv);
}
