/*  saves: private bookmarks.

      saves.create {id}               -> 200 {saved: true}
      saves.delete {id}               -> 200 {saved: false}
      saves.list   {limit?, cursor?}  -> 200 {items: [post], next_cursor}   (GET /me/saved)

    Idempotent like likes. A save gets its own time-ordered id when it is
    made, so /me/saved is newest first by save time and pages by that id.
    Saved posts pass through the visibility function like every read: a
    post whose author went private or blocked the viewer drops out of the
    list (the page may then hold fewer items than the limit; next_cursor
    still says whether there is more). Saves emit no events (nobody else is
    told what a user bookmarks).
*/
#include "media.h"
#include "args.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

static json_t *s_save(call_t *call, bool save)
{
    int64_t id = 0, author = 0;
    json_t *reply = posts_visible_arg(call, &id, &author);
    if (reply) return reply;
    char post_id[21], viewer[21], save_id[21];
    const char *params[] = {media_id_text(call->viewer_id, viewer), media_id_text(id, post_id),
                            media_id_text(ids_next(), save_id)};
    long changed = save ? db_exec(call->db,
                                  "INSERT INTO saves (user_id, post_id, id) VALUES ($1, $2, $3)"
                                  " ON CONFLICT DO NOTHING",
                                  3, params)
                        : db_exec(call->db, "DELETE FROM saves WHERE user_id = $1 AND post_id = $2",
                                  2, params);
    if (changed < 0) {
        bool gone = streq(db_last_sqlstate(call->db), "23503"); // deleted meanwhile
        return gone ? media_not_found() : media_internal("save");
    }
    return reply_ok(200, json_pack("{s:b}", "saved", save));
}

json_t *saves_create(call_t *call)
{
    return s_save(call, true);
}

json_t *saves_delete(call_t *call)
{
    return s_save(call, false);
}

json_t *saves_list(call_t *call)
{
    if (call->viewer_id <= 0) return media_signed_out();
    int64_t before = INT64_MAX;
    int limit = 20;
    json_t *reply = media_page_args(call->args, &limit, &before);
    if (reply) return reply;
    char viewer[21];
    const char *leading[] = {media_id_text(call->viewer_id, viewer)};
    //  The save id rides along as the last column, after POST_SELECT's.
    PGresult *res =
        media_page_query(call->db,
                         POST_SELECT ", sv.id FROM saves sv JOIN posts p"
                                     " ON p.id = sv.post_id WHERE sv.user_id = $1::bigint"
                                     " AND sv.id < $2::bigint"
                                     " ORDER BY sv.id DESC LIMIT $3::int",
                         1, leading, before, limit);
    if (!res) return media_internal("list saves");
    bool more = false;
    int64_t last = 0;
    int rows = media_page_rows(res, limit, POST_COLUMNS, &more, &last);
    json_t *failure = NULL;
    json_t *items = render_posts(call, NULL, res, rows, &failure);
    PQclear(res);
    if (!items) return failure;
    return media_page(items, more, last, 0);
}
