/*  Unit tests for gateway/metrics: the Prometheus text format (HELP/TYPE
    lines, label escaping, cumulative buckets, +Inf, _sum and _count),
    bounded label sets, and concurrent updates.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../gateway/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_assert_line(const char *text, const char *line)
{
    //  A whole line, not a prefix of a longer one.
    size_t length = strlen(line);
    const char *p = text;
    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[length] == '\n') return;
        p += length;
    }
    fail_msg("missing line: %s\n---\n%s", line, text);
}

static void test_empty(void **state)
{
    metrics_t *metrics = metrics_new();
    size_t size = 0;
    char *text = metrics_render(metrics, &size);
    assert_non_null(text);
    assert_int_equal(size, strlen(text));
    s_assert_line(text, "# TYPE http_requests_total counter");
    s_assert_line(text, "# TYPE http_request_duration_seconds histogram");
    s_assert_line(text, "# TYPE rpc_duration_seconds histogram");
    s_assert_line(text, "# TYPE rpc_errors_total counter");
    s_assert_line(text, "# TYPE websocket_connections gauge");
    s_assert_line(text, "websocket_connections 0");
    assert_int_equal(text[size - 1], '\n');
    free(text);
    metrics_destroy(&metrics);
    assert_null(metrics);
    metrics_destroy(&metrics);
}

static void test_requests_and_histograms(void **state)
{
    metrics_t *metrics = metrics_new();
    metrics_http_observe(metrics, "/api/v1/users/{username}", "GET", 200, 0.003);
    metrics_http_observe(metrics, "/api/v1/users/{username}", "GET", 200, 0.2);
    metrics_http_observe(metrics, "/api/v1/users/{username}", "GET", 404, 30.0);
    metrics_http_observe(metrics, "/api/v1/me", "BREW", 405, 0.001);
    metrics_rpc_observe(metrics, "identity", 200, 0.004);
    metrics_rpc_observe(metrics, "identity", 504, 5.0);
    metrics_rpc_observe(metrics, "identity", 503, 0.001);
    metrics_rpc_observe(metrics, "identity", 503, 0.001);
    metrics_rpc_observe(metrics, "identity", 500, 0.001);
    metrics_rpc_observe(metrics, "identity", 409, 0.001);
    metrics_websocket_add(metrics, 3);
    metrics_websocket_add(metrics, -1);

    char *text = metrics_render(metrics, NULL);
    s_assert_line(text, "http_requests_total{route=\"/api/v1/users/{username}\",method=\"GET\","
                        "status=\"200\"} 2");
    s_assert_line(text, "http_requests_total{route=\"/api/v1/users/{username}\",method=\"GET\","
                        "status=\"404\"} 1");
    //  Unknown methods fold into OTHER (bounded cardinality).
    s_assert_line(text, "http_requests_total{route=\"/api/v1/me\",method=\"OTHER\","
                        "status=\"405\"} 1");
    //  Buckets are cumulative; 30 s is only in +Inf.
    s_assert_line(text, "http_request_duration_seconds_bucket{route=\"/api/v1/users/{username}\","
                        "le=\"0.005\"} 1");
    s_assert_line(text, "http_request_duration_seconds_bucket{route=\"/api/v1/users/{username}\","
                        "le=\"0.25\"} 2");
    s_assert_line(text, "http_request_duration_seconds_bucket{route=\"/api/v1/users/{username}\","
                        "le=\"10\"} 2");
    s_assert_line(text, "http_request_duration_seconds_bucket{route=\"/api/v1/users/{username}\","
                        "le=\"+Inf\"} 3");
    s_assert_line(text,
                  "http_request_duration_seconds_count{route=\"/api/v1/users/{username}\"} 3");
    s_assert_line(text, "http_request_duration_seconds_sum{route=\"/api/v1/users/{username}\"} "
                        "30.203000");
    s_assert_line(text, "rpc_duration_seconds_count{service=\"identity\"} 6");
    s_assert_line(text, "rpc_duration_seconds_bucket{service=\"identity\",le=\"5\"} 6");
    s_assert_line(text, "rpc_errors_total{service=\"identity\",code=\"timeout\"} 1");
    s_assert_line(text, "rpc_errors_total{service=\"identity\",code=\"unavailable\"} 2");
    s_assert_line(text, "rpc_errors_total{service=\"identity\",code=\"internal\"} 1");
    s_assert_line(text, "websocket_connections 2");
    //  Every non-comment line is "name{labels} value" or "name value".
    char *copy = strdup(text);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *space = strrchr(line, ' ');
        assert_non_null(space);
        char *end = NULL;
        strtod(space + 1, &end);
        assert_true(end && *end == '\0');
    }
    free(copy);
    free(text);
    metrics_destroy(&metrics);
}

static void test_escaping_and_cap(void **state)
{
    metrics_t *metrics = metrics_new();
    metrics_http_observe(metrics, "a\"b\\c\nd", NULL, 200, 0.1);
    char *text = metrics_render(metrics, NULL);
    assert_non_null(strstr(text, "route=\"a\\\"b\\\\c\\nd\",method=\"OTHER\""));
    free(text);
    char route[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 100; i++) {
        snprintf(route, sizeof route, "/r%d", i);
        metrics_http_observe(metrics, route, "GET", 200, 0.1);
    }
    text = metrics_render(metrics, NULL);
    assert_null(strstr(text, "route=\"/r2100\""));
    assert_non_null(strstr(text, "route=\"/r10\""));
    free(text);
    assert_string_equal(metrics_method_label("PATCH"), "PATCH");
    assert_string_equal(metrics_method_label("patch"), "OTHER");
    metrics_destroy(&metrics);
}

static void *s_observe(void *arg)
{
    metrics_t *metrics = (metrics_t *)arg;
    for (int i = 0; i < 2000; i++) {
        metrics_http_observe(metrics, "/x", "GET", 200, 0.001);
        metrics_rpc_observe(metrics, "svc", 504, 0.5);
    }
    return NULL;
}

static void test_threads(void **state)
{
    metrics_t *metrics = metrics_new();
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, s_observe, metrics);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    char *text = metrics_render(metrics, NULL);
    s_assert_line(text, "http_requests_total{route=\"/x\",method=\"GET\",status=\"200\"} 8000");
    s_assert_line(text, "rpc_errors_total{service=\"svc\",code=\"timeout\"} 8000");
    free(text);
    metrics_destroy(&metrics);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_requests_and_histograms),
        cmocka_unit_test(test_escaping_and_cap),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("gateway_metrics", tests, NULL, NULL);
}
