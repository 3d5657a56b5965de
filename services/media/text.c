/*  text: hashtags and mentions parsed from captions and comments.

    One pass over the UTF-8 text with a small decoder. A marker ('#' or
    '@') starts a tag only at the start of the text or after a character
    that could not be part of a word, so "page#2" and "ann@example.com"
    hold neither a tag nor a mention.

    #tag: the longest run of Unicode letters, digits (GLib's
    g_unichar_isalnum, which vips' GLib already brings), combining marks
    (so tags in Devanagari or Thai keep their vowel signs) and '_',
    lower-cased with g_utf8_strdown; tags longer than
    TEXT_HASHTAG_MAX_CHARS are ignored, at most TEXT_HASHTAGS_MAX are kept.

    @name: the longest run of [A-Za-z0-9._], lower-cased, with trailing
    dots dropped (a sentence may end right after a name); 1 to 30 of them.
    Only names identity knows are kept (text_resolve_mentions, one
    users.by_usernames call).
*/
#include "media.h"
#include "errors.h"
#include "log.h"

#include <czmq.h>
#include <glib.h>
#include <string.h>

//  Decodes one code point at *p (valid UTF-8, as args_string checked);
//  advances *p. Returns 0 at the end.
static gunichar s_next(const char **p)
{
    if (!**p) return 0;
    gunichar c = g_utf8_get_char_validated(*p, -1);
    if (c == (gunichar)-1 || c == (gunichar)-2) {
        (*p)++; // not reachable for checked text; never loop forever
        return 0xfffd;
    }
    *p = g_utf8_next_char(*p);
    return c;
}

static bool s_tag_char(gunichar c)
{
    if (c == '_') return true;
    if (g_unichar_isalnum(c)) return true;
    GUnicodeType type = g_unichar_type(c);
    return type == G_UNICODE_NON_SPACING_MARK || type == G_UNICODE_SPACING_MARK;
}

static bool s_name_char(gunichar c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_';
}

//  Whether a marker after c may start a tag: c is not part of a word.
static bool s_boundary(gunichar previous)
{
    return previous == 0 ||
           !(s_tag_char(previous) || previous == '.' || previous == '@' || previous == '#');
}

static void s_append_distinct(json_t *array, const char *value)
{
    size_t index;
    json_t *item;
    json_array_foreach(array, index, item)
    {
        if (streq(json_string_value(item), value)) return;
    }
    json_array_append_new(array, json_string(value));
}

json_t *text_hashtags(const char *text)
{
    json_t *tags = json_array();
    gunichar previous = 0;
    const char *p = text ? text : "";
    while (*p) {
        gunichar c = s_next(&p);
        if (c == '#' && s_boundary(previous)) {
            const char *start = p, *end = p;
            long chars = 0;
            while (*end) {
                const char *q = end;
                gunichar d = s_next(&q);
                if (!s_tag_char(d)) break;
                end = q;
                chars++;
            }
            if (chars > 0 && chars <= TEXT_HASHTAG_MAX_CHARS &&
                json_array_size(tags) < TEXT_HASHTAGS_MAX) {
                gchar *lower = g_utf8_strdown(start, end - start);
                if (lower) s_append_distinct(tags, lower);
                g_free(lower);
            }
            previous = ' '; // "#a#b" is two tags
            p = end;
            continue;
        }
        previous = c;
    }
    return tags;
}

json_t *text_mention_candidates(const char *text)
{
    json_t *names = json_array();
    gunichar previous = 0;
    const char *p = text ? text : "";
    while (*p) {
        gunichar c = s_next(&p);
        if (c == '@' && s_boundary(previous)) {
            const char *end = p;
            while (*end && s_name_char((unsigned char)*end))
                end++;
            size_t length = (size_t)(end - p);
            while (length > 0 && p[length - 1] == '.')
                length--;
            if (length >= 1 && length <= 30 && json_array_size(names) < TEXT_MENTIONS_MAX) {
                char name[31];
                for (size_t i = 0; i < length; i++)
                    name[i] = (char)g_ascii_tolower(p[i]);
                name[length] = '\0';
                s_append_distinct(names, name);
            }
            previous = 'a';
            p = end;
            continue;
        }
        previous = c;
    }
    return names;
}

int text_resolve_mentions(call_t *call, const json_t *candidates, json_t **ids_out,
                          json_t **names_out, json_t **failure)
{
    *ids_out = json_array();
    *names_out = json_array();
    *failure = NULL;
    if (json_array_size(candidates) == 0) return 0;
    json_t *args = json_pack("{s:O}", "usernames", candidates);
    json_t *reply = rpc_call(call->rpc, "identity", "users.by_usernames", call->viewer_id, args,
                             NULL, call->request->deadline_ms);
    json_decref(args);
    if (reply_status(reply) != 200) {
        log_warn("users.by_usernames answered %d", reply_status(reply));
        *failure = reply_error(503, ERR_UNAVAILABLE, "cannot resolve mentions right now");
        json_decref(reply);
        json_decref(*ids_out);
        json_decref(*names_out);
        *ids_out = *names_out = NULL;
        return -1;
    }
    //  Keep the caption's order: look each candidate up in the answer.
    json_t *users = json_object_get(reply_body(reply), "users");
    size_t index;
    json_t *candidate;
    json_array_foreach(candidates, index, candidate)
    {
        size_t at;
        json_t *user;
        json_array_foreach(users, at, user)
        {
            const char *username = json_string_value(json_object_get(user, "username"));
            const char *id = json_string_value(json_object_get(user, "id"));
            if (username && id && streq(username, json_string_value(candidate))) {
                json_array_append_new(*ids_out, json_string(id));
                json_array_append_new(*names_out, json_string(username));
                break;
            }
        }
    }
    json_decref(reply);
    return 0;
}
