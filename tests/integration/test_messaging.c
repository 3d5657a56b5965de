/*  test_messaging: direct messages through the gateway (conversations,
    messages, read receipts, Idempotency-Key, ordering, blocks, sharing a
    post), against a fresh stack: identity, graph, messaging, notification
    and, when it is built, media (sharing needs it; those tests skip
    without it). Ports 17800-17809.

    Every endpoint that reads or changes a conversation has a test where a
    non-participant tries (404). Each test makes its own users, so tests do
    not depend on each other's order.
*/
#include "fixtures.h"
#include "harness.h"

#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define PASSWORD "correct horse battery"

static bool s_have_media;

//  ---- helpers ---------------------------------------------------------------

static long s_call(const char *method, const char *path, const char *token, json_t *body,
                   http_response_t *r)
{
    long status = http_json(method, path, token, body, r);
    json_decref(body);
    return status;
}

static long s_status(const char *method, const char *path, const char *token, json_t *body)
{
    http_response_t r;
    long status = s_call(method, path, token, body, &r);
    http_response_clear(&r);
    return status;
}

static void s_expect_error(const http_response_t *r, long status, const char *code,
                           const char *field)
{
    if (r->status != status)
        fprintf(stderr, "expected %ld, got %ld: %s\n", status, r->status, r->body);
    assert_int_equal(r->status, status);
    assert_string_equal(http_error_code(r), code);
    if (field) {
        if (!http_error_names(r, field))
            fprintf(stderr, "expected field %s in %s\n", field, r->body);
        assert_true(http_error_names(r, field));
    }
}

static void s_call_error(const char *method, const char *path, const char *token, json_t *body,
                         long status, const char *code, const char *field)
{
    http_response_t r;
    s_call(method, path, token, body, &r);
    s_expect_error(&r, status, code, field);
    http_response_clear(&r);
}

typedef struct {
    char name[32];
    char id[24];
    char token[1024];
} user_t;

static void s_user(user_t *user, const char *name)
{
    json_t *session = harness_register(name, PASSWORD);
    assert_non_null(session);
    snprintf(user->name, sizeof user->name, "%s", name);
    snprintf(user->id, sizeof user->id, "%s", harness_str(json_object_get(session, "user"), "id"));
    snprintf(user->token, sizeof user->token, "%s", harness_str(session, "access_token"));
    json_decref(session);
}

static bool s_is_digits(const char *text)
{
    return text && *text && strspn(text, "0123456789") == strlen(text);
}

static bool s_is_time(const char *text)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!text || strlen(text) != sizeof shape - 1) return false;
    for (size_t i = 0; shape[i]; i++) {
        bool ok = shape[i] == 'd' ? (text[i] >= '0' && text[i] <= '9') : text[i] == shape[i];
        if (!ok) return false;
    }
    return true;
}

//  POST /conversations with these usernames; returns the status and the
//  conversation id in id (when 200/201).
static long s_start(const user_t *who, char *id, size_t size, ...)
{
    json_t *names = json_array();
    va_list ap;
    va_start(ap, size);
    for (const char *name = va_arg(ap, const char *); name; name = va_arg(ap, const char *))
        json_array_append_new(names, json_string(name));
    va_end(ap);
    http_response_t r;
    long status = s_call("POST", "/api/v1/conversations", who->token,
                         json_pack("{s:o}", "participants", names), &r);
    if (id && (status == 200 || status == 201))
        snprintf(id, size, "%s", harness_str(r.json, "id"));
    else if (status != 200 && status != 201 && id)
        id[0] = '\0';
    http_response_clear(&r);
    return status;
}

//  Sends text into conversation; returns the new message (caller decrefs).
static json_t *s_send(const user_t *who, const char *conversation, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conversation);
    http_response_t r;
    long status = s_call("POST", path, who->token, json_pack("{s:s}", "text", text), &r);
    if (status != 201) fprintf(stderr, "send: %ld %s\n", status, r.body);
    assert_int_equal(status, 201);
    json_t *message = json_incref(r.json);
    http_response_clear(&r);
    return message;
}

//  GET path as who, expecting 200; returns the body (caller decrefs).
static json_t *s_get(const user_t *who, const char *path)
{
    http_response_t r;
    long status = s_call("GET", path, who->token, NULL, &r);
    if (status != 200) fprintf(stderr, "GET %s: %ld %s\n", path, status, r.body);
    assert_int_equal(status, 200);
    json_t *body = json_incref(r.json);
    http_response_clear(&r);
    return body;
}

//  The conversation id in who's list (first page of 100), or NULL.
static json_t *s_find_conversation(const user_t *who, const char *id)
{
    json_t *page = s_get(who, "/api/v1/conversations?limit=100");
    json_t *found = NULL;
    size_t index;
    json_t *item;
    json_array_foreach(json_object_get(page, "items"), index, item)
    {
        if (strcmp(harness_str(item, "id"), id) == 0) found = json_incref(item);
    }
    json_decref(page);
    return found;
}

static long long s_unread(const user_t *who, const char *conversation)
{
    json_t *item = s_find_conversation(who, conversation);
    assert_non_null(item);
    long long count = json_integer_value(json_object_get(item, "unread_count"));
    json_decref(item);
    return count;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void s_check_participants(const json_t *conversation, int count, ...)
{
    json_t *participants = json_object_get(conversation, "participants");
    assert_true(json_is_array(participants));
    assert_int_equal(json_array_size(participants), count);
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        const user_t *user = va_arg(ap, const user_t *);
        bool found = false;
        size_t index;
        json_t *participant;
        json_array_foreach(participants, index, participant)
        {
            if (strcmp(harness_str(participant, "id"), user->id) == 0) {
                found = true;
                assert_string_equal(harness_str(participant, "username"), user->name);
                assert_true(json_is_integer(json_object_get(participant, "followers_count")));
            }
        }
        if (!found) fprintf(stderr, "participant %s missing\n", user->name);
        assert_true(found);
    }
    va_end(ap);
}

static void s_check_message(const json_t *message, const char *conversation, const user_t *sender,
                            const char *text)
{
    assert_true(s_is_digits(harness_str(message, "id")));
    assert_string_equal(harness_str(message, "conversation_id"), conversation);
    json_t *from = json_object_get(message, "sender");
    assert_string_equal(harness_str(from, "id"), sender->id);
    assert_string_equal(harness_str(from, "username"), sender->name);
    assert_true(json_object_get(from, "avatar_url") != NULL);
    if (text) assert_string_equal(harness_str(message, "text"), text);
    assert_true(json_object_get(message, "post") != NULL);
    assert_true(s_is_time(harness_str(message, "created_at")));
}

//  ---- conversations -----------------------------------------------------------

static void test_one_to_one(void **state)
{
    (void)state;
    user_t ann, bob;
    s_user(&ann, "oo_ann");
    s_user(&bob, "oo_bob");
    http_response_t r;
    assert_int_equal(s_call("POST", "/api/v1/conversations", ann.token,
                            json_pack("{s:[s]}", "participants", "oo_bob"), &r),
                     201);
    const char *id = harness_str(r.json, "id");
    assert_true(s_is_digits(id));
    char conversation[32];
    snprintf(conversation, sizeof conversation, "%s", id);
    s_check_participants(r.json, 2, &ann, &bob);
    assert_true(json_is_null(json_object_get(r.json, "last_message")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "unread_count")), 0);
    assert_true(s_is_time(harness_str(r.json, "created_at")));
    assert_true(s_is_time(harness_str(r.json, "updated_at")));
    http_response_clear(&r);

    //  The same pair again, from either side and in any case: the same one.
    char again[32];
    assert_int_equal(s_start(&ann, again, sizeof again, "oo_bob", NULL), 200);
    assert_string_equal(again, conversation);
    assert_int_equal(s_start(&bob, again, sizeof again, "OO_Ann", NULL), 200);
    assert_string_equal(again, conversation);
    //  Naming yourself too changes nothing: still the 1:1.
    assert_int_equal(s_start(&ann, again, sizeof again, "oo_bob", "oo_ann", "oo_bob", NULL), 200);
    assert_string_equal(again, conversation);

    char path[128];
    snprintf(path, sizeof path, "/api/v1/conversations/%s", conversation);
    json_t *got = s_get(&bob, path);
    assert_string_equal(harness_str(got, "id"), conversation);
    s_check_participants(got, 2, &ann, &bob);
    json_decref(got);
}

static void test_create_errors(void **state)
{
    (void)state;
    user_t ann, bob;
    s_user(&ann, "ce_ann");
    s_user(&bob, "ce_bob");
    const char *path = "/api/v1/conversations";
    s_call_error("POST", path, ann.token, json_object(), 400, "invalid", "participants");
    s_call_error("POST", path, ann.token, json_pack("{s:s}", "participants", "ce_bob"), 400,
                 "invalid", "participants");
    s_call_error("POST", path, ann.token, json_pack("{s:[]}", "participants"), 400, "invalid",
                 "participants");
    s_call_error("POST", path, ann.token, json_pack("{s:[i]}", "participants", 42), 400, "invalid",
                 "participants");
    s_call_error("POST", path, ann.token, json_pack("{s:[s]}", "participants", "ce_ann"), 400,
                 "invalid", "participants");
    //  An unknown name among known ones: 404 and nothing created.
    s_call_error("POST", path, ann.token,
                 json_pack("{s:[s,s]}", "participants", "ce_bob", "ce_nobody"), 404, "not_found",
                 NULL);
    s_call_error("POST", path, ann.token, json_pack("{s:[s]}", "participants", "bad name!"), 404,
                 "not_found", NULL);
    json_t *page = s_get(&ann, "/api/v1/conversations");
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    assert_true(json_is_null(json_object_get(page, "next_cursor")));
    json_decref(page);
    page = s_get(&bob, "/api/v1/conversations");
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);
    //  No token.
    s_call_error("POST", path, NULL, json_pack("{s:[s]}", "participants", "ce_bob"), 401,
                 "unauthenticated", NULL);
    s_call_error("GET", path, NULL, NULL, 401, "unauthenticated", NULL);
}

static void test_groups(void **state)
{
    (void)state;
    //  33 people: a group of 32 (creator included) is fine, 33 is not.
    user_t users[33];
    char name[32];
    for (int i = 0; i < 33; i++) {
        snprintf(name, sizeof name, "gr_%02d", i);
        s_user(&users[i], name);
    }
    json_t *names = json_array();
    for (int i = 1; i < 33; i++)
        json_array_append_new(names, json_string(users[i].name));
    http_response_t r;
    s_call("POST", "/api/v1/conversations", users[0].token,
           json_pack("{s:O}", "participants", names), &r);
    s_expect_error(&r, 400, "invalid", "participants");
    http_response_clear(&r);

    json_array_remove(names, 31);
    assert_int_equal(s_call("POST", "/api/v1/conversations", users[0].token,
                            json_pack("{s:O}", "participants", names), &r),
                     201);
    assert_int_equal(json_array_size(json_object_get(r.json, "participants")), 32);
    assert_true(json_is_true(json_object_get(r.json, "is_group")));
    char group[32];
    snprintf(group, sizeof group, "%s", harness_str(r.json, "id"));
    http_response_clear(&r);

    //  A group of three is always new, even with the same people.
    char small1[32], small2[32];
    assert_int_equal(s_start(&users[0], small1, sizeof small1, "gr_01", "gr_02", NULL), 201);
    assert_int_equal(s_start(&users[0], small2, sizeof small2, "gr_01", "gr_02", NULL), 201);
    assert_string_not_equal(small1, small2);

    //  Every member sees the group and can talk in it; the 33rd cannot.
    json_decref(s_send(&users[5], group, "hello group"));
    json_t *found = s_find_conversation(&users[31], group);
    assert_non_null(found);
    assert_int_equal(json_integer_value(json_object_get(found, "unread_count")), 1);
    assert_string_equal(harness_str(json_object_get(found, "last_message"), "text"), "hello group");
    json_decref(found);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", group);
    s_call_error("POST", path, users[32].token, json_pack("{s:s}", "text", "me too"), 404,
                 "not_found", NULL);
    json_decref(names);
}

//  ---- messages ----------------------------------------------------------------

static void test_send_and_list(void **state)
{
    (void)state;
    user_t ann, bob;
    s_user(&ann, "sl_ann");
    s_user(&bob, "sl_bob");
    char conversation[32];
    assert_int_equal(s_start(&ann, conversation, sizeof conversation, "sl_bob", NULL), 201);
    char *sent[5];
    for (int i = 0; i < 5; i++) {
        char text[32];
        snprintf(text, sizeof text, "message %d", i);
        json_t *message = s_send(i % 2 ? &bob : &ann, conversation, text);
        s_check_message(message, conversation, i % 2 ? &bob : &ann, text);
        assert_true(json_is_null(json_object_get(message, "post")));
        sent[i] = strdup(harness_str(message, "id"));
        json_decref(message);
    }
    //  Newest first, two a page, every message once.
    char path[256];
    char cursor[128] = "";
    int seen = 0;
    for (int page = 0; page < 4; page++) {
        if (*cursor)
            snprintf(path, sizeof path, "/api/v1/conversations/%s/messages?limit=2&cursor=%s",
                     conversation, cursor);
        else
            snprintf(path, sizeof path, "/api/v1/conversations/%s/messages?limit=2", conversation);
        json_t *body = s_get(&bob, path);
        size_t index;
        json_t *item;
        json_array_foreach(json_object_get(body, "items"), index, item)
        {
            assert_true(seen < 5);
            assert_string_equal(harness_str(item, "id"), sent[4 - seen]);
            seen++;
        }
        json_t *next = json_object_get(body, "next_cursor");
        if (json_is_null(next)) {
            json_decref(body);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(body);
    }
    assert_int_equal(seen, 5);

    //  last_message and updated_at follow the newest message.
    json_t *item = s_find_conversation(&ann, conversation);
    assert_string_equal(harness_str(json_object_get(item, "last_message"), "id"), sent[4]);
    json_decref(item);
    for (int i = 0; i < 5; i++)
        free(sent[i]);

    //  Lists: bad limit and cursor.
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages?limit=0", conversation);
    s_call_error("GET", path, ann.token, NULL, 400, "invalid", "limit");
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages?limit=x", conversation);
    s_call_error("GET", path, ann.token, NULL, 400, "invalid", "limit");
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages?cursor=abc", conversation);
    s_call_error("GET", path, ann.token, NULL, 400, "invalid", "cursor");
    s_call_error("GET", "/api/v1/conversations?cursor=abc", ann.token, NULL, 400, "invalid",
                 "cursor");
    s_call_error("GET", "/api/v1/conversations?limit=-1", ann.token, NULL, 400, "invalid", "limit");
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages?limit=1000", conversation);
    json_t *all = s_get(&ann, path);
    assert_int_equal(json_array_size(json_object_get(all, "items")), 5);
    json_decref(all);
}

static void test_send_validation(void **state)
{
    (void)state;
    user_t ann, bob;
    s_user(&ann, "sv_ann");
    s_user(&bob, "sv_bob");
    char conversation[32], path[128];
    assert_int_equal(s_start(&ann, conversation, sizeof conversation, "sv_bob", NULL), 201);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conversation);
    s_call_error("POST", path, ann.token, json_object(), 400, "invalid", "text");
    s_call_error("POST", path, ann.token, json_pack("{s:s}", "text", ""), 400, "invalid", "text");
    s_call_error("POST", path, ann.token, json_pack("{s:i}", "text", 42), 400, "invalid", "text");
    s_call_error("POST", path, ann.token, json_pack("{s:i}", "post_id", 42), 400, "invalid",
                 "post_id");
    s_call_error("POST", path, ann.token, json_pack("{s:s}", "post_id", "abc"), 400, "invalid",
                 "post_id");
    //  4,000 code points (multi-byte ones) pass, 4,001 do not.
    size_t unit = strlen("é");
    char *text = malloc(unit * 4001 + 1);
    for (int i = 0; i < 4001; i++)
        memcpy(text + i * unit, "é", unit);
    text[unit * 4001] = '\0';
    s_call_error("POST", path, ann.token, json_pack("{s:s}", "text", text), 400, "invalid", "text");
    text[unit * 4000] = '\0';
    json_t *message = s_send(&ann, conversation, text);
    assert_string_equal(harness_str(message, "text"), text);
    json_decref(message);
    free(text);
    //  A NUL in the text (the gateway refuses it before the service).
    http_response_t r;
    const char nul_body[] = "{\"text\":\"a\\u0000b\"}";
    http_request("POST", path, ann.token, nul_body, NULL, &r);
    s_expect_error(&r, 400, "invalid", NULL);
    http_response_clear(&r);
    //  Not JSON.
    http_request("POST", path, ann.token, "{", NULL, &r);
    assert_int_equal(r.status, 400);
    http_response_clear(&r);
}

static void test_other_users(void **state)
{
    (void)state;
    user_t ann, bob, eve;
    s_user(&ann, "ou_ann");
    s_user(&bob, "ou_bob");
    s_user(&eve, "ou_eve");
    char conversation[32], path[160];
    assert_int_equal(s_start(&ann, conversation, sizeof conversation, "ou_bob", NULL), 201);
    json_t *message = s_send(&ann, conversation, "private");
    char message_id[32];
    snprintf(message_id, sizeof message_id, "%s", harness_str(message, "id"));
    json_decref(message);

    //  eve is not a participant: everything is 404, as if it did not exist.
    snprintf(path, sizeof path, "/api/v1/conversations/%s", conversation);
    s_call_error("GET", path, eve.token, NULL, 404, "not_found", NULL);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conversation);
    s_call_error("GET", path, eve.token, NULL, 404, "not_found", NULL);
    s_call_error("POST", path, eve.token, json_pack("{s:s}", "text", "hi"), 404, "not_found", NULL);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/read", conversation);
    s_call_error("POST", path, eve.token, json_pack("{s:s}", "message_id", message_id), 404,
                 "not_found", NULL);
    assert_null(s_find_conversation(&eve, conversation));
    //  Nothing eve did reached the conversation.
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conversation);
    json_t *page = s_get(&bob, path);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
    json_decref(page);

    //  Unknown and malformed ids.
    s_call_error("GET", "/api/v1/conversations/123456789", ann.token, NULL, 404, "not_found", NULL);
    s_call_error("GET", "/api/v1/conversations/abc", ann.token, NULL, 404, "not_found", NULL);
    s_call_error("GET", "/api/v1/conversations/99999999999999999999999/messages", ann.token, NULL,
                 404, "not_found", NULL);
    s_call_error("POST", "/api/v1/conversations/123/messages", ann.token,
                 json_pack("{s:s}", "text", "x"), 404, "not_found", NULL);
    s_call_error("POST", "/api/v1/conversations/123/read", ann.token,
                 json_pack("{s:s}", "message_id", message_id), 404, "not_found", NULL);
    //  No token.
    snprintf(path, sizeof path, "/api/v1/conversations/%s", conversation);
    s_call_error("GET", path, NULL, NULL, 401, "unauthenticated", NULL);
}

//  ---- read receipts and unread counts ------------------------------------------

static void test_read_receipts(void **state)
{
    (void)state;
    user_t ann, bob;
    s_user(&ann, "rr_ann");
    s_user(&bob, "rr_bob");
    char conversation[32], other[32], path[160];
    assert_int_equal(s_start(&bob, conversation, sizeof conversation, "rr_ann", NULL), 201);
    char ids[3][32];
    for (int i = 0; i < 3; i++) {
        json_t *message = s_send(&bob, conversation, "ping");
        snprintf(ids[i], sizeof ids[i], "%s", harness_str(message, "id"));
        json_decref(message);
    }
    //  My own messages never count.
    assert_int_equal(s_unread(&bob, conversation), 0);
    assert_int_equal(s_unread(&ann, conversation), 3);
    json_decref(s_send(&ann, conversation, "pong"));
    assert_int_equal(s_unread(&ann, conversation), 3);
    assert_int_equal(s_unread(&bob, conversation), 1);

    snprintf(path, sizeof path, "/api/v1/conversations/%s/read", conversation);
    assert_int_equal(s_status("POST", path, ann.token, json_pack("{s:s}", "message_id", ids[1])),
                     204);
    assert_int_equal(s_unread(&ann, conversation), 1);
    //  Marking an older one again does not bring anything back.
    assert_int_equal(s_status("POST", path, ann.token, json_pack("{s:s}", "message_id", ids[0])),
                     204);
    assert_int_equal(s_unread(&ann, conversation), 1);
    assert_int_equal(s_status("POST", path, ann.token, json_pack("{s:s}", "message_id", ids[2])),
                     204);
    assert_int_equal(s_unread(&ann, conversation), 0);
    //  GET /conversations/{id} shows the same count.
    snprintf(path, sizeof path, "/api/v1/conversations/%s", conversation);
    json_t *got = s_get(&bob, path);
    assert_int_equal(json_integer_value(json_object_get(got, "unread_count")), 1);
    json_decref(got);

    //  Errors: missing, wrong type, and a message of another conversation.
    snprintf(path, sizeof path, "/api/v1/conversations/%s/read", conversation);
    s_call_error("POST", path, ann.token, json_object(), 400, "invalid", "message_id");
    s_call_error("POST", path, ann.token, json_pack("{s:i}", "message_id", 5), 400, "invalid",
                 "message_id");
    user_t cat;
    s_user(&cat, "rr_cat");
    assert_int_equal(s_start(&ann, other, sizeof other, "rr_cat", NULL), 201);
    json_t *foreign = s_send(&cat, other, "elsewhere");
    s_call_error("POST", path, ann.token,
                 json_pack("{s:s}", "message_id", harness_str(foreign, "id")), 404, "not_found",
                 NULL);
    json_decref(foreign);
}

static void test_activity_order(void **state)
{
    (void)state;
    user_t ann, b1, b2, b3;
    s_user(&ann, "ao_ann");
    s_user(&b1, "ao_b1");
    s_user(&b2, "ao_b2");
    s_user(&b3, "ao_b3");
    char c1[32], c2[32], c3[32];
    assert_int_equal(s_start(&ann, c1, sizeof c1, "ao_b1", NULL), 201);
    assert_int_equal(s_start(&ann, c2, sizeof c2, "ao_b2", NULL), 201);
    assert_int_equal(s_start(&ann, c3, sizeof c3, "ao_b3", NULL), 201);
    //  Newest activity first: c3 (just made), c2, c1; then a message in c1
    //  moves it to the top.
    json_decref(s_send(&b1, c1, "bump"));
    json_t *page = s_get(&ann, "/api/v1/conversations?limit=2");
    json_t *items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(harness_str(json_array_get(items, 0), "id"), c1);
    assert_string_equal(harness_str(json_array_get(items, 1), "id"), c3);
    const char *next = json_string_value(json_object_get(page, "next_cursor"));
    assert_non_null(next);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/conversations?limit=2&cursor=%s", next);
    json_t *second = s_get(&ann, path);
    items = json_object_get(second, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(harness_str(json_array_get(items, 0), "id"), c2);
    assert_true(json_is_null(json_object_get(second, "next_cursor")));
    json_decref(second);
    json_decref(page);
}

//  ---- idempotency and ordering -------------------------------------------------

static void test_idempotency_key(void **state)
{
    (void)state;
    user_t ann, bob;
    s_user(&ann, "ik_ann");
    s_user(&bob, "ik_bob");
    char conversation[32], path[160];
    assert_int_equal(s_start(&ann, conversation, sizeof conversation, "ik_bob", NULL), 201);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conversation);
    const char *headers[] = {"Idempotency-Key: retry-1", NULL};
    http_response_t first, second, third;
    http_request("POST", path, ann.token, "{\"text\":\"once\"}", headers, &first);
    assert_int_equal(first.status, 201);
    http_request("POST", path, ann.token, "{\"text\":\"once\"}", headers, &second);
    assert_int_equal(second.status, 201);
    assert_string_equal(harness_str(first.json, "id"), harness_str(second.json, "id"));
    assert_true(json_equal(first.json, second.json));
    //  Another user's same key is theirs.
    http_request("POST", path, bob.token, "{\"text\":\"once\"}", headers, &third);
    assert_int_equal(third.status, 201);
    assert_string_not_equal(harness_str(first.json, "id"), harness_str(third.json, "id"));
    http_response_clear(&first);
    http_response_clear(&second);
    http_response_clear(&third);
    //  A new key is a new message.
    const char *other[] = {"Idempotency-Key: retry-2", NULL};
    http_request("POST", path, ann.token, "{\"text\":\"once\"}", other, &first);
    assert_int_equal(first.status, 201);
    http_response_clear(&first);
    json_t *page = s_get(&ann, path);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 3);
    json_decref(page);
    //  A failed attempt records nothing: the same key then succeeds.
    const char *fresh[] = {"Idempotency-Key: retry-3", NULL};
    http_request("POST", path, ann.token, "{\"text\":5}", fresh, &first);
    assert_int_equal(first.status, 400);
    http_response_clear(&first);
    http_request("POST", path, ann.token, "{\"text\":\"now\"}", fresh, &first);
    assert_int_equal(first.status, 201);
    assert_string_equal(harness_str(first.json, "text"), "now");
    http_response_clear(&first);
}

typedef struct {
    const user_t *user;
    const char *conversation;
    const char *key; // sends the same key every time when set
    int count;
    int created;
} sender_t;

static void *s_sender(void *arg)
{
    sender_t *self = (sender_t *)arg;
    char path[160], header[128];
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", self->conversation);
    snprintf(header, sizeof header, "Idempotency-Key: %s", self->key ? self->key : "");
    const char *headers[] = {header, NULL};
    for (int i = 0; i < self->count; i++) {
        http_response_t r;
        char body[64];
        snprintf(body, sizeof body, "{\"text\":\"%s %d\"}", self->user->name, i);
        http_request("POST", path, self->user->token, body, self->key ? headers : NULL, &r);
        if (r.status == 201) self->created++;
        http_response_clear(&r);
    }
    return NULL;
}

static void test_concurrent_order(void **state)
{
    (void)state;
    user_t ann, bob;
    s_user(&ann, "co_ann");
    s_user(&bob, "co_bob");
    char conversation[32], path[160];
    assert_int_equal(s_start(&ann, conversation, sizeof conversation, "co_bob", NULL), 201);
    //  Four senders at once, ten messages each.
    sender_t senders[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        senders[i] =
            (sender_t){.user = i % 2 ? &bob : &ann, .conversation = conversation, .count = 10};
        assert_int_equal(pthread_create(&threads[i], NULL, s_sender, &senders[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(senders[i].created, 10);
    }
    //  Every message once, ids strictly decreasing (order = id order), and
    //  the list's last_message is the highest id.
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages?limit=100", conversation);
    json_t *page = s_get(&ann, path);
    json_t *items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 40);
    unsigned long long previous = ULLONG_MAX;
    size_t index;
    json_t *item;
    json_array_foreach(items, index, item)
    {
        unsigned long long id = strtoull(harness_str(item, "id"), NULL, 10);
        assert_true(id < previous);
        previous = id;
    }
    json_t *found = s_find_conversation(&bob, conversation);
    assert_string_equal(harness_str(json_object_get(found, "last_message"), "id"),
                        harness_str(json_array_get(items, 0), "id"));
    json_decref(found);
    json_decref(page);

    //  Concurrent retries with one key: exactly one message.
    for (int i = 0; i < 4; i++) {
        senders[i] =
            (sender_t){.user = &ann, .conversation = conversation, .key = "race", .count = 3};
        assert_int_equal(pthread_create(&threads[i], NULL, s_sender, &senders[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(senders[i].created, 3);
    }
    page = s_get(&ann, path);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 41);
    json_decref(page);
}

//  ---- blocks ------------------------------------------------------------------

static void test_blocks(void **state)
{
    (void)state;
    user_t ann, bob, cat;
    s_user(&ann, "bl_ann");
    s_user(&bob, "bl_bob");
    s_user(&cat, "bl_cat");
    char conversation[32], path[160];
    assert_int_equal(s_start(&ann, conversation, sizeof conversation, "bl_bob", NULL), 201);
    json_decref(s_send(&bob, conversation, "before"));
    assert_int_equal(s_status("POST", "/api/v1/users/bl_bob/block", ann.token, NULL), 204);

    //  Neither can message the other, nor start a conversation.
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conversation);
    s_call_error("POST", path, bob.token, json_pack("{s:s}", "text", "hey"), 404, "not_found",
                 NULL);
    s_call_error("POST", path, ann.token, json_pack("{s:s}", "text", "hey"), 404, "not_found",
                 NULL);
    s_call_error("POST", "/api/v1/conversations", bob.token,
                 json_pack("{s:[s]}", "participants", "bl_ann"), 404, "not_found", NULL);
    s_call_error("POST", "/api/v1/conversations", ann.token,
                 json_pack("{s:[s,s]}", "participants", "bl_bob", "bl_cat"), 404, "not_found",
                 NULL);
    //  Unblocked: talking works again.
    assert_int_equal(s_status("DELETE", "/api/v1/users/bl_bob/block", ann.token, NULL), 204);
    json_decref(s_send(&bob, conversation, "after"));
}

//  The texts of conversation's messages as who sees them (first page of
//  100), newest first, joined by '|' into out.
static void s_texts(const user_t *who, const char *conversation, char *out, size_t size)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages?limit=100", conversation);
    json_t *page = s_get(who, path);
    size_t used = 0;
    out[0] = '\0';
    size_t index;
    json_t *item;
    json_array_foreach(json_object_get(page, "items"), index, item)
    {
        int n =
            snprintf(out + used, size - used, "%s%s", index ? "|" : "", harness_str(item, "text"));
        if (n > 0 && (size_t)n < size - used) used += (size_t)n;
    }
    json_decref(page);
}

//  The id of the first conversation in who's list.
static void s_first_conversation(const user_t *who, char *out, size_t size)
{
    json_t *page = s_get(who, "/api/v1/conversations?limit=100");
    snprintf(out, size, "%s", harness_str(json_array_get(json_object_get(page, "items"), 0), "id"));
    json_decref(page);
}

//  who's notifications of type message from actor (first page of 100).
static int s_message_notifications(const user_t *who, const user_t *actor)
{
    json_t *page = s_get(who, "/api/v1/notifications?limit=100");
    int count = 0;
    size_t index;
    json_t *item;
    json_array_foreach(json_object_get(page, "items"), index, item)
    {
        if (strcmp(harness_str(item, "type"), "message") == 0 &&
            strcmp(harness_str(json_object_get(item, "actor"), "id"), actor->id) == 0)
            count++;
    }
    json_decref(page);
    return count;
}

//  Blocks inside a group (API.md: blocked users cannot message each other
//  and see each other as not found): the group keeps working for everyone
//  else, but what one of a blocked pair sends is hidden from the other,
//  whichever of the two blocked, for good.
static void test_group_blocks(void **state)
{
    (void)state;
    user_t ann, bob, cat, dan, eve;
    s_user(&ann, "gb_ann");
    s_user(&bob, "gb_bob");
    s_user(&cat, "gb_cat");
    s_user(&dan, "gb_dan");
    s_user(&eve, "gb_eve");
    char group[32], pair[32], path[160], texts[512];
    assert_int_equal(s_start(&ann, group, sizeof group, "gb_bob", "gb_cat", "gb_dan", NULL), 201);
    json_decref(s_send(&bob, group, "before"));
    //  cat's newest conversation is a 1:1 with ann, above the group.
    assert_int_equal(s_start(&cat, pair, sizeof pair, "gb_ann", NULL), 201);
    json_decref(s_send(&ann, pair, "hi cat"));
    long long cat_unread = s_unread(&cat, group);
    assert_int_equal(cat_unread, 1);

    //  cat blocks bob. Neither can start a conversation naming the other,
    //  alone or in a group, whoever blocked.
    assert_int_equal(s_status("POST", "/api/v1/users/gb_bob/block", cat.token, NULL), 204);
    s_call_error("POST", "/api/v1/conversations", bob.token,
                 json_pack("{s:[s,s]}", "participants", "gb_cat", "gb_ann"), 404, "not_found",
                 NULL);
    s_call_error("POST", "/api/v1/conversations", cat.token,
                 json_pack("{s:[s,s]}", "participants", "gb_bob", "gb_dan"), 404, "not_found",
                 NULL);

    //  bob still talks in the group (201: he is not told), but cat does not
    //  see it: not in her messages, not as last_message, not unread, no
    //  notification, and the group does not move above her 1:1.
    json_t *hidden = s_send(&bob, group, "hidden from cat");
    char hidden_id[32];
    snprintf(hidden_id, sizeof hidden_id, "%s", harness_str(hidden, "id"));
    json_decref(hidden);
    s_texts(&cat, group, texts, sizeof texts);
    assert_string_equal(texts, "before");
    s_texts(&ann, group, texts, sizeof texts);
    assert_string_equal(texts, "hidden from cat|before");
    s_texts(&dan, group, texts, sizeof texts);
    assert_string_equal(texts, "hidden from cat|before");
    json_t *item = s_find_conversation(&cat, group);
    assert_non_null(item);
    assert_string_equal(harness_str(json_object_get(item, "last_message"), "text"), "before");
    assert_int_equal(json_integer_value(json_object_get(item, "unread_count")), cat_unread);
    json_decref(item);
    item = s_find_conversation(&dan, group);
    assert_string_equal(harness_str(json_object_get(item, "last_message"), "text"),
                        "hidden from cat");
    json_decref(item);
    char first[32];
    s_first_conversation(&cat, first, sizeof first);
    assert_string_equal(first, pair);
    s_first_conversation(&dan, first, sizeof first);
    assert_string_equal(first, group);
    //  A read receipt naming it is 404 for cat: it is not a message of hers.
    snprintf(path, sizeof path, "/api/v1/conversations/%s/read", group);
    s_call_error("POST", path, cat.token, json_pack("{s:s}", "message_id", hidden_id), 404,
                 "not_found", NULL);
    assert_int_equal(s_status("POST", path, dan.token, json_pack("{s:s}", "message_id", hidden_id)),
                     204);

    //  The other way: what cat (the blocker) sends is hidden from bob.
    json_decref(s_send(&cat, group, "from cat"));
    s_texts(&bob, group, texts, sizeof texts);
    assert_string_equal(texts, "hidden from cat|before");
    s_texts(&ann, group, texts, sizeof texts);
    assert_string_equal(texts, "from cat|hidden from cat|before");
    item = s_find_conversation(&bob, group);
    assert_string_equal(harness_str(json_object_get(item, "last_message"), "text"),
                        "hidden from cat");
    assert_int_equal(json_integer_value(json_object_get(item, "unread_count")), 0);
    json_decref(item);

    //  Notifications (made from message.created) follow: none for the
    //  hidden messages. ann's marker comes after them from the same
    //  producer, so once cat has its notification the hidden ones were
    //  handled too (the block also took away cat's for "before").
    json_decref(s_send(&ann, group, "marker"));
    bool settled = false;
    for (int i = 0; i < 100 && !settled; i++) {
        settled = s_message_notifications(&cat, &ann) >= 2 &&
                  s_message_notifications(&bob, &ann) >= 1 &&
                  s_message_notifications(&cat, &bob) == 0;
        if (!settled) s_sleep_ms(100);
    }
    assert_true(settled);
    assert_int_equal(s_message_notifications(&cat, &bob), 0);
    assert_int_equal(s_message_notifications(&bob, &cat), 0);
    assert_true(s_message_notifications(&dan, &cat) >= 1);

    //  Someone outside the group still cannot read or send (404).
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", group);
    s_call_error("POST", path, eve.token, json_pack("{s:s}", "text", "let me in"), 404, "not_found",
                 NULL);
    s_call_error("GET", path, eve.token, NULL, 404, "not_found", NULL);

    //  Unblocked: new messages reach cat; the hidden one stays hidden.
    assert_int_equal(s_status("DELETE", "/api/v1/users/gb_bob/block", cat.token, NULL), 204);
    json_decref(s_send(&bob, group, "after"));
    s_texts(&cat, group, texts, sizeof texts);
    assert_string_equal(texts, "after|marker|from cat|before");
    s_texts(&bob, group, texts, sizeof texts);
    assert_string_equal(texts, "after|marker|hidden from cat|before");
}

//  ---- sharing a post (needs media) ----------------------------------------------

//  Creates a post as who; returns its id (static buffer per call site).
static void s_post(const user_t *who, char *id, size_t size)
{
    //  fixtures.c's post (a generated PNG); only the token of who is used.
    fx_user_t author = {.token = who->token};
    char *made = fx_post(&author, "shared");
    snprintf(id, size, "%s", made);
    free(made);
}

static void test_share(void **state)
{
    (void)state;
    if (!s_have_media) skip();
    user_t ann, bob, cat, priv;
    s_user(&ann, "sh_ann");
    s_user(&bob, "sh_bob");
    s_user(&cat, "sh_cat");
    s_user(&priv, "sh_priv");
    char post[32], path[160];
    s_post(&ann, post, sizeof post);

    //  ann shares her post with bob and cat: two 1:1s, created as needed.
    snprintf(path, sizeof path, "/api/v1/posts/%s/share", post);
    http_response_t r;
    assert_int_equal(s_call("POST", path, ann.token,
                            json_pack("{s:[s,s], s:s}", "to", "sh_bob", "sh_cat", "text", "look"),
                            &r),
                     201);
    json_t *messages = json_object_get(r.json, "messages");
    assert_int_equal(json_array_size(messages), 2);
    json_t *first = json_array_get(messages, 0);
    assert_string_equal(harness_str(first, "text"), "look");
    assert_string_equal(harness_str(json_object_get(first, "post"), "id"), post);
    char conversation[32];
    snprintf(conversation, sizeof conversation, "%s", harness_str(first, "conversation_id"));
    http_response_clear(&r);
    char again[32];
    //  The 1:1 with bob or cat already exists now.
    long status = s_start(&ann, again, sizeof again, "sh_bob", NULL);
    assert_int_equal(status, 200);

    //  bob sees the post in the message.
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", again);
    json_t *page = s_get(&bob, path);
    json_t *item = json_array_get(json_object_get(page, "items"), 0);
    assert_string_equal(harness_str(json_object_get(item, "post"), "id"), post);
    json_decref(page);

    //  A private account's post: its author shares it with bob, who may not
    //  see it: the message arrives with post null (not leaked).
    assert_int_equal(
        s_status("PATCH", "/api/v1/me", priv.token, json_pack("{s:b}", "is_private", 1)), 200);
    char secret[32];
    s_post(&priv, secret, sizeof secret);
    snprintf(path, sizeof path, "/api/v1/posts/%s/share", secret);
    assert_int_equal(s_call("POST", path, priv.token, json_pack("{s:[s]}", "to", "sh_bob"), &r),
                     201);
    const char *secret_conversation =
        harness_str(json_array_get(json_object_get(r.json, "messages"), 0), "conversation_id");
    char secret_path[160];
    snprintf(secret_path, sizeof secret_path, "/api/v1/conversations/%s/messages",
             secret_conversation);
    //  The sender sees her post; bob sees null.
    assert_non_null(
        json_object_get(json_array_get(json_object_get(r.json, "messages"), 0), "post"));
    http_response_clear(&r);
    page = s_get(&bob, secret_path);
    item = json_array_get(json_object_get(page, "items"), 0);
    assert_true(json_is_null(json_object_get(item, "post")));
    json_decref(page);

    //  bob cannot share a post he cannot see (404), nor to unknown people.
    snprintf(path, sizeof path, "/api/v1/posts/%s/share", secret);
    s_call_error("POST", path, bob.token, json_pack("{s:[s]}", "to", "sh_cat"), 404, "not_found",
                 NULL);
    snprintf(path, sizeof path, "/api/v1/posts/%s/share", post);
    s_call_error("POST", path, bob.token, json_pack("{s:[s]}", "to", "sh_nobody"), 404, "not_found",
                 NULL);
    s_call_error("POST", path, bob.token, json_object(), 400, "invalid", "to");
    s_call_error("POST", path, bob.token, json_pack("{s:[s]}", "to", "sh_bob"), 400, "invalid",
                 "to");
    s_call_error("POST", "/api/v1/posts/123/share", bob.token, json_pack("{s:[s]}", "to", "sh_cat"),
                 404, "not_found", NULL);
    //  Sending a post_id directly follows the same rule.
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", again);
    s_call_error("POST", path, bob.token, json_pack("{s:s}", "post_id", secret), 404, "not_found",
                 NULL);
    assert_int_equal(s_status("POST", path, bob.token, json_pack("{s:s}", "post_id", post)), 201);
    (void)conversation;
}

//  Sharing respects blocks: a blocked pair cannot share with each other
//  (404 whoever blocked, nothing sent to anyone), and a post shared by a
//  third person with someone its author blocked arrives as null.
static void test_share_blocks(void **state)
{
    (void)state;
    if (!s_have_media) skip();
    user_t ann, bob, cat;
    s_user(&ann, "sb_ann");
    s_user(&bob, "sb_bob");
    s_user(&cat, "sb_cat");
    char post[32], cats[32], path[160];
    s_post(&ann, post, sizeof post);
    s_post(&cat, cats, sizeof cats);
    assert_int_equal(s_status("POST", "/api/v1/users/sb_bob/block", cat.token, NULL), 204);

    snprintf(path, sizeof path, "/api/v1/posts/%s/share", post);
    s_call_error("POST", path, bob.token, json_pack("{s:[s]}", "to", "sb_cat"), 404, "not_found",
                 NULL);
    s_call_error("POST", path, cat.token, json_pack("{s:[s]}", "to", "sb_bob"), 404, "not_found",
                 NULL);
    //  One blocked name among others: 404 and nobody gets anything.
    s_call_error("POST", path, bob.token, json_pack("{s:[s,s]}", "to", "sb_ann", "sb_cat"), 404,
                 "not_found", NULL);
    json_t *list = s_get(&ann, "/api/v1/conversations");
    assert_int_equal(json_array_size(json_object_get(list, "items")), 0);
    json_decref(list);
    //  bob cannot share cat's post at all: he cannot see it.
    snprintf(path, sizeof path, "/api/v1/posts/%s/share", cats);
    s_call_error("POST", path, bob.token, json_pack("{s:[s]}", "to", "sb_ann"), 404, "not_found",
                 NULL);
    //  ann shares cat's post with bob: sent, but bob sees post null.
    http_response_t r;
    assert_int_equal(s_call("POST", path, ann.token, json_pack("{s:[s]}", "to", "sb_bob"), &r),
                     201);
    json_t *message = json_array_get(json_object_get(r.json, "messages"), 0);
    assert_string_equal(harness_str(json_object_get(message, "post"), "id"), cats);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages",
             harness_str(message, "conversation_id"));
    http_response_clear(&r);
    json_t *page = s_get(&bob, path);
    json_t *item = json_array_get(json_object_get(page, "items"), 0);
    assert_non_null(item);
    assert_true(json_is_null(json_object_get(item, "post")));
    json_decref(page);
    page = s_get(&ann, path);
    item = json_array_get(json_object_get(page, "items"), 0);
    assert_string_equal(harness_str(json_object_get(item, "post"), "id"), cats);
    json_decref(page);
}

//  ---- deleting an account -------------------------------------------------------

static void test_user_deleted(void **state)
{
    (void)state;
    user_t ann, bob;
    s_user(&ann, "ud_ann");
    s_user(&bob, "ud_bob");
    char conversation[32];
    assert_int_equal(s_start(&ann, conversation, sizeof conversation, "ud_bob", NULL), 201);
    json_decref(s_send(&bob, conversation, "bye"));
    assert_int_equal(
        s_status("DELETE", "/api/v1/me", bob.token, json_pack("{s:s}", "password", PASSWORD)), 204);
    //  messaging learns it from identity.user.deleted: the 1:1 goes.
    json_t *found = NULL;
    for (int i = 0; i < 100; i++) {
        found = s_find_conversation(&ann, conversation);
        if (!found) break;
        json_decref(found);
        s_sleep_ms(100);
    }
    assert_null(found);
}

static void test_still_healthy(void **state)
{
    (void)state;
    assert_int_equal(s_status("GET", "/readyz", NULL, NULL), 200);
}

int main(int argc, char **argv)
{
    (void)argc;
    //  Sharing needs the media service; run its tests when it is built.
    char media[PATH_MAX];
    snprintf(media, sizeof media, "%s", argv[0]);
    char *slash = strrchr(media, '/');
    if (slash) snprintf(slash + 1, sizeof media - (size_t)(slash + 1 - media), "../../bin/media");
    s_have_media = access(media, X_OK) == 0;
    static const char *const with_media[] = {"identity",  "graph",        "media",
                                             "messaging", "notification", NULL};
    static const char *const without_media[] = {"identity", "graph", "messaging", "notification",
                                                NULL};
    harness_config_t config = {.name = "messaging",
                               .base_port = 17800,
                               .services = s_have_media ? with_media : without_media};
    if (harness_start(&config, argv[0]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_to_one),      cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_groups),          cmocka_unit_test(test_send_and_list),
        cmocka_unit_test(test_send_validation), cmocka_unit_test(test_other_users),
        cmocka_unit_test(test_read_receipts),   cmocka_unit_test(test_activity_order),
        cmocka_unit_test(test_idempotency_key), cmocka_unit_test(test_concurrent_order),
        cmocka_unit_test(test_blocks),          cmocka_unit_test(test_group_blocks),
        cmocka_unit_test(test_share),           cmocka_unit_test(test_share_blocks),
        cmocka_unit_test(test_user_deleted),    cmocka_unit_test(test_still_healthy),
    };
    int failed = cmocka_run_group_tests_name("messaging", tests, NULL, NULL);
    int problems = harness_stop(failed);
    return (failed || problems) ? 1 : 0;
}
