/*  visibility: the one function that decides whose posts a viewer sees.

    Every read of a post (a single post, a grid, a page of saved posts,
    posts.batch for the feed and search, the checks before a like, a
    comment or a save) asks here; nothing else in the service decides.

    The rule is graph's (docs/contracts.md): relations.visible {ids}
    answers which authors the viewer may see (public, or an approved
    follower, or the viewer, and no block either way); relations.batch
    tells blocks and the viewer's follow edge for one profile's grid (whose
    is_private comes fresh from identity, so a switch to private closes
    the grid at once) and blocks for comment authors and likers. Answers
    are cached per request (a visibility_t
    lives for one call), so a page of 20 posts by 5 authors costs one
    round trip.

    Without graph. When graph does not answer (503: no worker yet, 404: an
    older graph without the method, 504, anything but 200) the fallback is
    the safe reading of identity's is_private: a public author's posts are
    visible, a private author's only to the author. Nobody counts as
    blocked then. So the service works before graph exists, and a graph
    outage hides private posts instead of exposing them. An anonymous
    viewer follows nobody and has blocked nobody, so for them is_private
    decides without asking graph; the viewer's own posts are always
    visible.
*/
#include "media.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <string.h>

#define VIS_UNKNOWN 0
#define VIS_YES 1
#define VIS_NO 2

typedef struct {
    int visible;    // VIS_*: may the viewer see this author's posts
    int blocked;    // VIS_*: blocked either way
    int followed;   // VIS_*: relations.batch's followed_by_me (an approved follow)
    int can_view;   // VIS_*: relations.batch's can_view
    int is_private; // VIS_*: from identity
} vis_entry_t;

struct visibility_t {
    call_t *call;
    zhashx_t *entries; // "<id>" -> vis_entry_t (owned)
    bool graph_down;   // graph did not answer once: do not ask again
};

visibility_t *visibility_new(call_t *call)
{
    visibility_t *self = (visibility_t *)zmalloc(sizeof *self);
    self->call = call;
    self->entries = zhashx_new();
    zhashx_set_destructor(self->entries, (zhashx_destructor_fn *)zstr_free);
    return self;
}

void visibility_destroy(visibility_t **self_p)
{
    visibility_t *self = *self_p;
    if (!self) return;
    zhashx_destroy(&self->entries);
    freen(self);
    *self_p = NULL;
}

static vis_entry_t *s_entry(visibility_t *self, int64_t id)
{
    char key[21];
    media_id_text(id, key);
    vis_entry_t *entry = (vis_entry_t *)zhashx_lookup(self->entries, key);
    if (!entry) {
        //  zstr_free frees with free(): allocate with malloc (zmalloc zeroes).
        entry = (vis_entry_t *)zmalloc(sizeof *entry);
        zhashx_insert(self->entries, key, entry);
    }
    return entry;
}

//  Records is_private of users_by_id ("<id>" -> user): only ever identity's
//  own answer, never the projection's (render.c).
static void s_know_users(visibility_t *self, const json_t *users_by_id)
{
    const char *key;
    json_t *user;
    json_object_foreach((json_t *)users_by_id, key, user)
    {
        int64_t id = 0;
        if (!ids_parse(key, &id)) continue;
        s_entry(self, id)->is_private =
            json_is_true(json_object_get(user, "is_private")) ? VIS_YES : VIS_NO;
    }
}

//  A JSON array of id strings for the given ids.
static json_t *s_id_array(const int64_t *ids, size_t count)
{
    json_t *array = json_array();
    for (size_t i = 0; i < count; i++) {
        char text[21];
        json_array_append_new(array, json_string(media_id_text(ids[i], text)));
    }
    return array;
}

//  Calls graph; NULL (and graph_down set) when it does not answer 200.
static json_t *s_graph(visibility_t *self, const char *method, const int64_t *ids, size_t count)
{
    if (self->graph_down) return NULL;
    json_t *args = json_pack("{s:o}", "ids", s_id_array(ids, count));
    json_t *reply = rpc_call(self->call->rpc, "graph", method, self->call->viewer_id, args, NULL,
                             self->call->request->deadline_ms);
    json_decref(args);
    if (reply_status(reply) != 200) {
        int status = reply_status(reply);
        if (status != 503 && status != 404)
            log_warn("graph %s answered %d: visibility falls back to is_private", method, status);
        self->graph_down = true;
        json_decref(reply);
        return NULL;
    }
    return reply;
}

//  Makes sure is_private is known for every id (one users.batch for the
//  ones that are not). 0, or -1 with *failure set.
static int s_need_private(visibility_t *self, const int64_t *ids, size_t count, json_t **failure)
{
    int64_t *missing = (int64_t *)zmalloc(sizeof(int64_t) * (count ? count : 1));
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (s_entry(self, ids[i])->is_private == VIS_UNKNOWN) missing[n++] = ids[i];
    int rc = 0;
    if (n > 0) {
        //  From identity itself, not the projection: a switch to private
        //  must hide the posts from the very next request, not once the
        //  event has arrived.
        json_t *users = render_users_from(self->call, missing, n, false, failure);
        if (!users) {
            rc = -1;
        } else {
            s_know_users(self, users);
            json_decref(users);
            //  Unknown to identity: a deleted account, whose posts go soon.
            for (size_t i = 0; i < n; i++) {
                vis_entry_t *entry = s_entry(self, missing[i]);
                if (entry->is_private == VIS_UNKNOWN) entry->is_private = VIS_YES;
            }
        }
    }
    freen(missing);
    return rc;
}

int visibility_authors(visibility_t *self, const int64_t *ids, size_t count, bool *visible,
                       json_t **failure)
{
    *failure = NULL;
    int64_t viewer = self->call->viewer_id;
    int64_t *ask = (int64_t *)zmalloc(sizeof(int64_t) * (count ? count : 1));
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        vis_entry_t *entry = s_entry(self, ids[i]);
        if (ids[i] == viewer && viewer > 0) entry->visible = VIS_YES;
        if (entry->visible != VIS_UNKNOWN) continue;
        bool listed = false;
        for (size_t j = 0; j < n && !listed; j++)
            listed = ask[j] == ids[i];
        if (!listed) ask[n++] = ids[i];
    }
    int rc = 0;
    if (n > 0 && viewer > 0) {
        json_t *reply = s_graph(self, "relations.visible", ask, n);
        if (reply) {
            for (size_t i = 0; i < n; i++)
                s_entry(self, ask[i])->visible = VIS_NO;
            json_t *list = json_object_get(reply_body(reply), "visible");
            size_t index;
            json_t *item;
            json_array_foreach(list, index, item)
            {
                int64_t id = 0;
                if (json_is_string(item) && ids_parse(json_string_value(item), &id))
                    s_entry(self, id)->visible = VIS_YES;
            }
            json_decref(reply);
            n = 0;
        }
    }
    if (n > 0) {
        //  Anonymous, or graph is not there: is_private decides.
        if (s_need_private(self, ask, n, failure) != 0) {
            rc = -1;
        } else {
            for (size_t i = 0; i < n; i++) {
                vis_entry_t *entry = s_entry(self, ask[i]);
                entry->visible = entry->is_private == VIS_NO ? VIS_YES : VIS_NO;
            }
        }
    }
    if (rc == 0)
        for (size_t i = 0; i < count; i++)
            visible[i] = s_entry(self, ids[i])->visible == VIS_YES;
    freen(ask);
    return rc;
}

//  Fills blocked, followed and can_view for ids from relations.batch (one call).
static void s_relations(visibility_t *self, const int64_t *ids, size_t count)
{
    int64_t *ask = (int64_t *)zmalloc(sizeof(int64_t) * (count ? count : 1));
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        vis_entry_t *entry = s_entry(self, ids[i]);
        if (entry->blocked == VIS_UNKNOWN && ids[i] != self->call->viewer_id) ask[n++] = ids[i];
    }
    json_t *reply =
        n > 0 && self->call->viewer_id > 0 ? s_graph(self, "relations.batch", ask, n) : NULL;
    json_t *relations = reply ? json_object_get(reply_body(reply), "relations") : NULL;
    for (size_t i = 0; i < n; i++) {
        char key[21];
        json_t *relation = json_object_get(relations, media_id_text(ask[i], key));
        vis_entry_t *entry = s_entry(self, ask[i]);
        if (!relation) {
            entry->blocked = VIS_NO; // graph down, anonymous, or unknown to graph
            continue;
        }
        entry->blocked = json_is_true(json_object_get(relation, "blocked")) ? VIS_YES : VIS_NO;
        entry->followed =
            json_is_true(json_object_get(relation, "followed_by_me")) ? VIS_YES : VIS_NO;
        entry->can_view = json_is_true(json_object_get(relation, "can_view")) ? VIS_YES : VIS_NO;
    }
    json_decref(reply);
    freen(ask);
}

visibility_profile_t visibility_profile(visibility_t *self, const json_t *user, bool fresh)
{
    int64_t id = 0;
    const char *text = json_string_value(json_object_get(user, "id"));
    if (!text || !ids_parse(text, &id)) return VISIBILITY_HIDDEN;
    int64_t viewer = self->call->viewer_id;
    if (id == viewer) return VISIBILITY_VISIBLE;
    vis_entry_t *entry = s_entry(self, id);
    if (fresh)
        entry->is_private = json_is_true(json_object_get(user, "is_private")) ? VIS_YES : VIS_NO;
    s_relations(self, &id, 1);
    if (entry->blocked == VIS_YES) return VISIBILITY_HIDDEN;
    bool can_view;
    if (fresh) {
        //  Identity's flag of this very request, with the follow edge graph
        //  owns (unknown when graph did not answer: then only a public
        //  account's grid shows).
        can_view = entry->is_private == VIS_NO || entry->followed == VIS_YES;
    } else if (entry->can_view != VIS_UNKNOWN) {
        //  Graph's own flag: current, since identity hands graph every
        //  switch before answering PATCH /me (graph users.privacy).
        can_view = entry->can_view == VIS_YES;
    } else {
        return VISIBILITY_UNDECIDED;
    }
    entry->visible = can_view ? VIS_YES : VIS_NO;
    return can_view ? VISIBILITY_VISIBLE : VISIBILITY_PRIVATE;
}

int visibility_blocked(visibility_t *self, const int64_t *ids, size_t count, bool *blocked)
{
    s_relations(self, ids, count);
    for (size_t i = 0; i < count; i++)
        blocked[i] = s_entry(self, ids[i])->blocked == VIS_YES;
    return 0;
}
