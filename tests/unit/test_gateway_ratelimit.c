/*  Unit tests for gateway/ratelimit: the burst and refill of N a minute,
    Retry-After values, per-key independence, the off switch, the memory
    cap under a flood of addresses, IPv6 /64 keys, and many threads at once.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../gateway/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void test_window(void **state)
{
    ratelimit_t *limit = ratelimit_new(10, 100);
    int64_t now = 1000000;
    for (int i = 0; i < 10; i++)
        assert_int_equal(ratelimit_take(limit, "10.0.0.1", now), 0);
    //  The 11th in the same minute waits for one token: 6 s.
    assert_int_equal(ratelimit_take(limit, "10.0.0.1", now), 6);
    assert_int_equal(ratelimit_take(limit, "10.0.0.1", now + 1000), 5);
    //  A refused request does not count: at +6 s exactly one more passes.
    assert_int_equal(ratelimit_take(limit, "10.0.0.1", now + 6000), 0);
    assert_int_equal(ratelimit_take(limit, "10.0.0.1", now + 6000), 6);
    //  Another address is untouched.
    assert_int_equal(ratelimit_take(limit, "10.0.0.2", now), 0);
    //  After a quiet minute the whole burst is back.
    for (int i = 0; i < 10; i++)
        assert_int_equal(ratelimit_take(limit, "10.0.0.1", now + 66000), 0);
    assert_true(ratelimit_take(limit, "10.0.0.1", now + 66000) > 0);
    ratelimit_destroy(&limit);
    assert_null(limit);
    ratelimit_destroy(&limit);
}

static void test_one_a_minute(void **state)
{
    ratelimit_t *limit = ratelimit_new(1, 10);
    assert_int_equal(ratelimit_take(limit, "a", 0), 0);
    assert_int_equal(ratelimit_take(limit, "a", 0), 60);
    assert_int_equal(ratelimit_take(limit, "a", 59001), 1);
    assert_int_equal(ratelimit_take(limit, "a", 60000), 0);
    ratelimit_destroy(&limit);
}

static void test_off(void **state)
{
    ratelimit_t *limit = ratelimit_new(0, 10);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ratelimit_take(limit, "a", 0), 0);
    assert_int_equal(ratelimit_size(limit), 0);
    ratelimit_destroy(&limit);
}

static void test_bounded_memory(void **state)
{
    ratelimit_t *limit = ratelimit_new(10, 64);
    char key[32];
    //  A flood of distinct addresses within one instant never grows past
    //  the cap.
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "10.1.%d.%d", i / 256, i % 256);
        assert_int_equal(ratelimit_take(limit, key, 5000), 0);
        assert_true(ratelimit_size(limit) <= 64);
    }
    //  Keys whose bucket refilled are dropped when room is needed.
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof key, "10.2.0.%d", i);
        ratelimit_take(limit, key, 10000000);
    }
    assert_true(ratelimit_size(limit) <= 64);
    //  A limited key keeps its state while the table churns below the cap.
    ratelimit_t *small = ratelimit_new(2, 8);
    assert_int_equal(ratelimit_take(small, "hot", 0), 0);
    assert_int_equal(ratelimit_take(small, "hot", 0), 0);
    assert_true(ratelimit_take(small, "hot", 0) > 0);
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "cold%d", i);
        ratelimit_take(small, key, 0);
    }
    assert_true(ratelimit_take(small, "hot", 0) > 0);
    //  Past the cap, the least limited key is evicted, not the hot one.
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "churn%d", i);
        ratelimit_take(small, key, 1);
        assert_true(ratelimit_size(small) <= 8);
    }
    assert_true(ratelimit_take(small, "hot", 1) > 0);
    ratelimit_destroy(&small);
    ratelimit_destroy(&limit);
}

static void test_keys(void **state)
{
    char key[RATELIMIT_KEY_MAX];
    ratelimit_address_key("192.168.1.7", key, sizeof key);
    assert_string_equal(key, "192.168.1.7");
    ratelimit_address_key("2001:db8:1:2:3:4:5:6", key, sizeof key);
    assert_string_equal(key, "2001:db8:1:2::/64");
    char other[RATELIMIT_KEY_MAX];
    ratelimit_address_key("2001:db8:1:2:ffff:ffff:ffff:ffff", other, sizeof other);
    assert_string_equal(key, other);
    ratelimit_address_key("::ffff:10.0.0.1", key, sizeof key);
    assert_string_equal(key, "::ffff:10.0.0.1");
    ratelimit_address_key("", key, sizeof key);
    assert_string_equal(key, "");
    ratelimit_address_key(NULL, key, sizeof key);
    assert_string_equal(key, "");
    ratelimit_address_key("not:an:address", key, sizeof key);
    assert_string_equal(key, "not:an:address");
    //  Overlong keys are truncated, not overflowed.
    ratelimit_t *limit = ratelimit_new(1, 4);
    char long_key[300];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = 0;
    assert_int_equal(ratelimit_take(limit, long_key, 0), 0);
    assert_true(ratelimit_take(limit, long_key, 0) > 0);
    assert_int_equal(ratelimit_take(limit, NULL, 0), 0);
    ratelimit_destroy(&limit);
}

typedef struct {
    ratelimit_t *limit;
    int allowed;
} worker_t;

static void *s_hammer(void *arg)
{
    worker_t *worker = (worker_t *)arg;
    for (int i = 0; i < 1000; i++)
        if (ratelimit_take(worker->limit, "shared", 0) == 0) worker->allowed++;
    return NULL;
}

static void test_threads(void **state)
{
    ratelimit_t *limit = ratelimit_new(10, 16);
    pthread_t threads[8];
    worker_t workers[8];
    for (int i = 0; i < 8; i++) {
        workers[i].limit = limit;
        workers[i].allowed = 0;
        pthread_create(&threads[i], NULL, s_hammer, &workers[i]);
    }
    int allowed = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        allowed += workers[i].allowed;
    }
    assert_int_equal(allowed, 10);
    ratelimit_destroy(&limit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window), cmocka_unit_test(test_one_a_minute),
        cmocka_unit_test(test_off),    cmocka_unit_test(test_bounded_memory),
        cmocka_unit_test(test_keys),   cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("gateway_ratelimit", tests, NULL, NULL);
}
