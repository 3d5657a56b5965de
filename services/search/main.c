/*  search: user, post and hashtag search, tag pages, trends and explore,
    answered from projections of other services' events (README.md).

    main() reads the search settings into one search_t and hands the
    service definition (search.c) to service_main(), which runs the
    workers, the database connections, the migrations and the event
    subscriber that feeds projections.c.
*/
#include "config.h"
#include "search.h"

#include <stdio.h>
#include <stdlib.h>

static search_t s_search;

//  users.c: loads user search's trigram index before the workers start.
int search_users_index_start(db_t *db, void *state);

int main(int argc, char **argv)
{
    setenv("SEARCH_TRENDS_TTL_MS", "10000", 0);
    //  The trigram, prefix and full-text plans depend on the query text:
    //  let Postgres plan them per call (common/db.c).
    setenv("DB_PLAN_CACHE_MODE", "auto", 0);
    if (search_init(&s_search, config_int("SEARCH_TRENDS_TTL_MS", 10000), NULL) != 0) {
        fprintf(stderr, "search: cannot initialise\n");
        return 1;
    }
    s_search.seed_enabled = config_int("SEARCH_SEED_ENABLED", 0) == 1;
    service_def_t def = *search_service_def(&s_search);
    def.on_start = search_users_index_start;
    int rc = service_main(&def, argc, argv);
    search_destroy(&s_search);
    return rc;
}
