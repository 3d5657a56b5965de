/*  test_privacy: a privacy switch or a block holds from the very next
    request, across the three services that share the decision.

    identity owns is_private; graph decides who may see whom from its own
    projection of it; media shows posts and grids and keeps a projection of
    its own. Both projections follow identity's events, milliseconds after
    PATCH /me has answered. What keeps the next request right: identity
    hands graph the switch before it answers (graph users.privacy, ordered
    by the account row's version), media never takes is_private from its
    projection, and the grid takes graph's can_view. Each check here comes
    straight after the change, with no waiting in between, and toggles
    several times, so an event arriving late (or out of order with the
    direct call) would show.
*/
#include "fixtures.h"
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <czmq.h>

#define BASE_PORT 17950

static void s_set_private(const fx_user_t *user, bool is_private)
{
    assert_int_equal(
        fx_status("PATCH", "/api/v1/me", user->token, json_pack("{s:b}", "is_private", is_private)),
        200);
}

static void test_switch_holds_at_once(void **state)
{
    (void)state;
    fx_user_t dave = fx_user("pv_dave"), carol = fx_user("pv_carol"), erin = fx_user("pv_erin");
    fx_follow(&erin, &dave); // a follower from the public days keeps access
    char *post = fx_post(&dave, "now you see it");
    char post_path[96], grid[96], followers[96];
    fx_path(post_path, sizeof post_path, "/api/v1/posts/%s", post);
    fx_path(grid, sizeof grid, "/api/v1/users/%s/posts", dave.name);
    fx_path(followers, sizeof followers, "/api/v1/users/%s/followers", dave.name);
    for (int round = 0; round < 8; round++) {
        bool now_private = round % 2 == 0;
        s_set_private(&dave, now_private);
        //  A stranger, signed in and anonymous.
        assert_int_equal(fx_status("GET", post_path, carol.token, NULL), now_private ? 404 : 200);
        assert_int_equal(fx_status("GET", grid, carol.token, NULL), now_private ? 403 : 200);
        assert_int_equal(fx_status("GET", followers, carol.token, NULL), now_private ? 403 : 200);
        assert_int_equal(fx_status("GET", post_path, NULL, NULL), now_private ? 404 : 200);
        assert_int_equal(fx_status("GET", grid, NULL, NULL), now_private ? 403 : 200);
        //  The follower and the owner, always.
        assert_int_equal(fx_status("GET", post_path, erin.token, NULL), 200);
        assert_int_equal(fx_status("GET", grid, erin.token, NULL), 200);
        assert_int_equal(fx_status("GET", grid, dave.token, NULL), 200);
    }
    free(post);
    fx_user_free(&dave);
    fx_user_free(&carol);
    fx_user_free(&erin);
}

static void test_grid_reads(void **state)
{
    (void)state;
    fx_user_t ann = fx_user("pv_ann"), bob = fx_user("pv_bob");
    char *first = fx_post(&ann, "one"), *second = fx_post(&ann, "two");
    //  Any case of the name, newest first, for a stranger and for the owner.
    char grid[96];
    fx_path(grid, sizeof grid, "/api/v1/users/%s/posts", "PV_ANN");
    const char *tokens[] = {bob.token, ann.token, NULL};
    for (int i = 0; i < 3; i++) {
        json_t *page = fx_get_page(grid, tokens[i]);
        json_t *items = json_object_get(page, "items");
        assert_int_equal(json_array_size(items), 2);
        assert_string_equal(harness_str(json_array_get(items, 0), "id"), second);
        assert_string_equal(harness_str(json_array_get(items, 1), "id"), first);
        json_t *author = json_object_get(json_array_get(items, 0), "author");
        assert_string_equal(harness_str(author, "username"), "pv_ann");
        json_decref(page);
    }
    //  Unknown names: 404 for everyone.
    assert_int_equal(fx_status("GET", "/api/v1/users/pv_nobody/posts", bob.token, NULL), 404);
    assert_int_equal(fx_status("GET", "/api/v1/users/pv_nobody/posts", NULL, NULL), 404);
    //  A block either way hides the grid and the posts at once.
    char block[96], post_path[96];
    fx_path(block, sizeof block, "/api/v1/users/%s/block", bob.name);
    fx_path(post_path, sizeof post_path, "/api/v1/posts/%s", first);
    assert_int_equal(fx_status("POST", block, ann.token, NULL), 204);
    assert_int_equal(fx_status("GET", grid, bob.token, NULL), 404);
    assert_int_equal(fx_status("GET", post_path, bob.token, NULL), 404);
    assert_int_equal(fx_status("DELETE", block, ann.token, NULL), 204);
    assert_int_equal(fx_status("GET", grid, bob.token, NULL), 200);
    assert_int_equal(fx_status("GET", post_path, bob.token, NULL), 200);
    free(first);
    free(second);
    fx_user_free(&ann);
    fx_user_free(&bob);
}

int main(int argc, char **argv)
{
    (void)argc;
    static const char *const services[] = {"identity", "graph", "media", NULL};
    static const char *const env[] = {"AUTH_RATE_LIMIT_PER_MIN=0", NULL};
    harness_config_t config = {
        .name = "privacy", .base_port = BASE_PORT, .services = services, .env = env};
    if (harness_start(&config, argv[0]) != 0) return 1;
    zsys_handler_set(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_holds_at_once),
        cmocka_unit_test(test_grid_reads),
        cmocka_unit_test(fx_test_still_healthy),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return harness_stop(failed);
}
