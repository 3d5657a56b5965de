/*  fixtures: users, photo posts, likes, comments, follows, list pages and
    home-feed reads through the gateway, for suites that build a social
    graph (test_feed, test_feed_outage, test_feed_scale) and the request
    helpers other suites share (test_graph, test_identity).

    Every helper asserts with cmocka (a failed request fails the running
    test with the status and body printed), so a test reads as the list of
    things a user does. Needs a running stack (harness_start).
*/
#ifndef FIXTURES_H_INCLUDED
#define FIXTURES_H_INCLUDED

#include "harness.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define FX_PASSWORD "correct horse battery"
#define FX_ID_SIZE 24 // a decimal id and its NUL, with room

typedef struct {
    json_t *session;   // the 201 body of the registration
    const char *token; // borrowed from session
    const char *id;
    const char *name;
} fx_user_t;

//  Registers name (password FX_PASSWORD). Asserts 201.
fx_user_t fx_user(const char *name);
void fx_user_free(fx_user_t *user);

//  A small valid PNG (16x16 RGB, colour from seed). Caller frees; *size set.
unsigned char *fx_png(int seed, size_t *size);

//  POST /posts with one generated image and caption; asserts 201 and
//  returns the new post's id (caller frees).
char *fx_post(const fx_user_t *user, const char *caption);
//  DELETE /posts/{id} as user; asserts 204.
void fx_delete_post(const fx_user_t *user, const char *post_id);
//  POST / DELETE /users/{followee}/follow as follower; assert 200.
void fx_follow(const fx_user_t *follower, const fx_user_t *followee);
void fx_unfollow(const fx_user_t *follower, const fx_user_t *followee);

//  Status of method path as token with body (stolen, may be NULL); prints
//  the body of an answer >= 400.
long fx_status(const char *method, const char *path, const char *token, json_t *body);
//  Sends method path as token with body (stolen, may be NULL) and returns
//  the status; the response stays in *r for the caller to read and clear.
long fx_call(const char *method, const char *path, const char *token, json_t *body,
             http_response_t *r);
//  Formats a path into buf; returns buf.
const char *fx_path(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
//  "<base>?limit=<limit>", with "&cursor=<cursor>" when cursor is not
//  empty, into buf; returns buf.
const char *fx_page_path(char *buf, size_t size, const char *base, int limit, const char *cursor);
//  GET path (a list) as token: asserts 200, an items array and a
//  next_cursor that is null or a string; returns the body (caller decrefs).
json_t *fx_get_page(const char *path, const char *token);

//  POST /posts/{id}/like as user; asserts 200.
void fx_like(const fx_user_t *user, const char *post_id);
//  POST /posts/{id}/comments {text} as user; asserts 201 and returns the
//  new comment's id (caller frees).
char *fx_comment(const fx_user_t *user, const char *post_id, const char *text);

//  A cmocka test for the end of a suite: GET /readyz answers 200 (then
//  harness_stop judges how every program exits).
void fx_test_still_healthy(void **state);

//  Every post id of token's home feed, newest first, read page after page
//  with page_limit (following next_cursor, at most max ids). Returns the
//  count, or -1 when a page did not answer 200 (printed) or held more than
//  max ids.
int fx_feed_ids(const char *token, int page_limit, char (*ids)[FX_ID_SIZE], int max);

//  Compares decimal ids as numbers: > 0 when a is newer.
int fx_id_cmp(const char *a, const char *b);

#endif
