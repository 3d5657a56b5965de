/*  util: small helpers every feed file uses: replies, page arguments,
    event payload fields, times, and SQL array literals of ids.

    Ids travel as decimal strings in payloads and at the API; inside the
    service they are int64_t, and when a set of them goes into one query it
    is passed as a single text parameter holding an array literal
    ("{1,2,3}", cast to bigint[] in SQL), built only from integers the code
    formatted itself, so no caller text is ever spliced into SQL.
*/
#include "feed.h"
#include "args.h"
#include "cursor.h"
#include "errors.h"
#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

feed_t *feed_of(call_t *call)
{
    return (feed_t *)call->state;
}

json_t *feed_internal(const char *what)
{
    log_error("%s failed", what);
    return reply_error(500, ERR_INTERNAL, "internal error");
}

json_t *feed_upstream_error(const char *what, const json_t *reply)
{
    int status = reply_status(reply);
    const char *code = reply_error_code(reply);
    log_warn("%s: status %d %s", what, status, code ? code : "");
    if (status == 504) return reply_error(504, ERR_TIMEOUT, "a service did not answer in time");
    return reply_error(503, ERR_UNAVAILABLE, "a service is unavailable");
}

json_t *feed_require_viewer(call_t *call)
{
    if (call->viewer_id > 0) return NULL;
    return reply_error(401, ERR_UNAUTHENTICATED, "sign in first");
}

json_t *feed_page_args(const json_t *args, int *limit, int64_t *key1, int64_t *key2)
{
    json_t *fields = json_object();
    *key1 = 0;
    *key2 = 0;
    args_limit(args, limit, fields);
    const char *cursor = NULL;
    //  "?cursor=" (empty) is the first page, as if absent (as in graph).
    if (args_string(args, "cursor", false, 0, CURSOR_TEXT_MAX, &cursor, fields) == 1 && cursor[0] &&
        (cursor_decode(cursor, key1, key2) != 0 || *key1 <= 0))
        json_object_set_new(fields, "cursor", json_string("is not a cursor this server issued"));
    if (json_object_size(fields) > 0) return reply_invalid(fields, "some fields are not valid");
    json_decref(fields);
    return NULL;
}

int64_t feed_payload_id(const json_t *payload, const char *name)
{
    return feed_json_id(json_object_get(payload, name));
}

int64_t feed_json_id(const json_t *value)
{
    int64_t id = 0;
    if (json_is_string(value)) {
        if (json_string_length(value) > 20 || !ids_parse(json_string_value(value), &id)) return 0;
        return id;
    }
    if (json_is_integer(value) && json_integer_value(value) > 0) return json_integer_value(value);
    return 0;
}

//  Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" into unix ms; -1 when malformed.
static int64_t s_parse_time(const char *text)
{
    int year, month, day, hour, minute, second, consumed = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second,
               &consumed) != 6)
        return -1;
    const char *rest = text + consumed;
    int64_t ms = 0;
    if (*rest == '.') {
        rest++;
        int digits = 0;
        while (*rest >= '0' && *rest <= '9') {
            if (digits < 3) ms = ms * 10 + (*rest - '0');
            digits++;
            rest++;
        }
        if (digits == 0) return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (!streq(rest, "Z")) return -1;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = month - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = minute,
                    .tm_sec = second};
    time_t seconds = timegm(&tm);
    if (seconds == (time_t)-1) return -1;
    return (int64_t)seconds * 1000 + ms;
}

int64_t feed_payload_time_ms(const event_t *event, const char *name)
{
    json_t *value = json_object_get(event->payload, name);
    if (json_is_string(value)) {
        int64_t ms = s_parse_time(json_string_value(value));
        if (ms > 0) return ms;
    }
    return event->created_ms;
}

const char *feed_id_text(int64_t id, char *buf)
{
    ids_format(id, buf, 21);
    return buf;
}

long feed_exec_rows(db_t *db, const char *sql, const json_t *rows)
{
    char *input = json_dumps(rows, JSON_COMPACT);
    const char *params[] = {input};
    long rc = db_exec(db, sql, 1, params);
    free(input);
    return rc;
}

//  ---- array literals -------------------------------------------------------

void feed_ids_init(feed_ids_t *self)
{
    memset(self, 0, sizeof *self);
}

static void s_reserve(feed_ids_t *self, size_t more)
{
    if (self->length + more + 1 <= self->capacity) return;
    size_t capacity = self->capacity ? self->capacity * 2 : 256;
    while (capacity < self->length + more + 1)
        capacity *= 2;
    char *text = realloc(self->text, capacity);
    assert(text); // out of memory: CZMQ's policy, as zmalloc
    self->text = text;
    self->capacity = capacity;
}

void feed_ids_add(feed_ids_t *self, int64_t id)
{
    char digits[21];
    ids_format(id, digits, sizeof digits);
    size_t length = strlen(digits);
    s_reserve(self, length + 2);
    if (self->length == 0)
        self->text[self->length++] = '{';
    else
        self->text[self->length - 1] = ','; // replace the closing brace
    memcpy(self->text + self->length, digits, length);
    self->length += length;
    self->text[self->length++] = '}';
    self->text[self->length] = '\0';
    self->count++;
}

const char *feed_ids_literal(feed_ids_t *self)
{
    return self->length ? self->text : "{}";
}

void feed_ids_free(feed_ids_t *self)
{
    free(self->text);
    feed_ids_init(self);
}
