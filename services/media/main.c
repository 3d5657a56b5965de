/*  media: posts, images, likes, comments and saves (README.md).

    main() reads the media settings, opens the file store and hands the
    method table to service_main(), which owns the workers, connections,
    migrations, the outbox publisher and the identity event subscriber.

    The janitor. on_start() starts one more thread with its own database
    connection that calls files_sweep() every JANITOR_INTERVAL_MS: it
    expires unused uploads and old idempotency records and deletes the
    files nobody references any more (files.c). It stops with the service
    (zsys_interrupted, or the flag main() sets when service_main returns),
    and main() joins it. Several instances may each run one: collection
    takes a per-key lock, so they never step on each other.
*/
#include "media.h"
#include "config.h"
#include "image.h"
#include "log.h"

#include <czmq.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define JANITOR_INTERVAL_MS 1000
#define JANITOR_BATCH 200
#define DEFAULT_DATABASE_URL "postgresql://127.0.0.1:5432/app?user=app"

static media_t s_media;
static pthread_t s_janitor;
static bool s_janitor_running;
static atomic_bool s_stopping;

json_t *media_seed(call_t *call); // seed.c: benchmarks only (MEDIA_SEED_ENABLED=1)

static const service_method_t s_methods[] = {
    {"images.upload", images_upload},
    {"images.store", images_store},
    {"media.get", media_get},
    {"posts.create", posts_create},
    {"posts.get", posts_get},
    {"posts.update", posts_update},
    {"posts.delete", posts_delete},
    {"posts.by_user", posts_by_user},
    {"posts.batch", posts_batch},
    {"posts.counts", posts_counts},
    {"posts.recent_by_author", posts_recent_by_author},
    {"likes.create", likes_create},
    {"likes.delete", likes_delete},
    {"likes.list", likes_list},
    {"comments.create", comments_create},
    {"comments.list", comments_list},
    {"comments.delete", comments_delete},
    {"saves.create", saves_create},
    {"saves.delete", saves_delete},
    {"saves.list", saves_list},
    {"users.sync", accounts_sync},
    {"media.seed", media_seed},
    {NULL, NULL},
};

static const events_route_t s_consumes[] = {
    {"identity.user.created", accounts_user_created},
    {"identity.user.updated", accounts_user_updated},
    {"identity.user.deleted", accounts_user_deleted},
    {NULL, NULL},
};

static const char *const s_config_names[] = {"MEDIA_DIR", "MEDIA_KEY_SECRET", "MEDIA_SEED_ENABLED",
                                             NULL};

static const char s_usage[] =
    "Posts, images, likes, comments and saves (services/media/README.md).\n"
    "\n"
    "Media settings:\n"
    "  MEDIA_DIR         folder of the image files (var/media)\n"
    "  MEDIA_KEY_SECRET  secret that makes file keys unguessable (a development value;\n"
    "                    set it in production, and never change it once files exist)";

static void *s_janitor_thread(void *arg)
{
    media_t *self = (media_t *)arg;
    db_t *db = NULL;
    int64_t next = 0;
    while (!zsys_interrupted && !atomic_load(&s_stopping)) {
        zclock_sleep(100);
        if (zclock_mono() < next) continue;
        next = zclock_mono() + JANITOR_INTERVAL_MS;
        if (!db) db = db_new(config_str("DATABASE_URL", DEFAULT_DATABASE_URL), "media");
        if (!db) continue; // the database is away: try again next round
        int removed = files_sweep(db, self->storage, JANITOR_BATCH);
        if (removed > 0) log_info("janitor removed %d unreferenced files", removed);
    }
    db_destroy(&db);
    return NULL;
}

static int s_on_start(db_t *db, void *state)
{
    (void)db;
    media_t *self = (media_t *)state;
    if (image_init() != 0) {
        log_error("libvips failed to start");
        return -1;
    }
    if (pthread_create(&s_janitor, NULL, s_janitor_thread, self) != 0) {
        log_error("cannot start the janitor thread");
        return -1;
    }
    s_janitor_running = true;
    return 0;
}

int main(int argc, char **argv)
{
    //  One malloc arena, set before any thread starts. Freeing libvips'
    //  large buffers raises glibc's dynamic mmap and trim thresholds, and
    //  the free top of a thread's own arena above them is never given
    //  back (malloc_trim does not trim a non-main arena's top): media kept
    //  54-70 MiB after the bench's scenarios with 5 MiB in use. In the
    //  main arena the idle trim (common/service.c) reaches it: 39 MiB,
    //  of which 29 are libvips and the other libraries. No CPU cost was
    //  measurable (docs/benchmarks.md, session 5).
    mallopt(M_ARENA_MAX, 1);
    setenv("MEDIA_DIR", "var/media", 0);
    setenv("MEDIA_KEY_SECRET", "development media key secret", 0);
    bool help = false;
    for (int i = 1; i < argc; i++)
        help |= streq(argv[i], "--help") || streq(argv[i], "-h");
    if (!help) {
        s_media.storage =
            storage_new(config_str("MEDIA_DIR", "var/media"), config_str("MEDIA_KEY_SECRET", ""));
        if (!s_media.storage) {
            fprintf(stderr, "media: cannot open MEDIA_DIR %s\n", config_str("MEDIA_DIR", ""));
            return 1;
        }
    }
    service_def_t def = {
        .name = "media",
        .usage = s_usage,
        .methods = s_methods,
        .consumes = s_consumes,
        .produces_events = true,
        .uses_database = true,
        .state = &s_media,
        .on_start = s_on_start,
        .config_names = s_config_names,
    };
    int rc = service_main(&def, argc, argv);
    atomic_store(&s_stopping, true);
    if (s_janitor_running) pthread_join(s_janitor, NULL);
    storage_destroy(&s_media.storage);
    image_shutdown();
    return rc;
}
