/*  metrics: counters and histograms in plain arrays behind one mutex.

    Series are found by a linear scan over a small array: the label sets are
    bounded by design (see metrics.h) to a few hundred at most, and a scan
    of short strings costs less than the request it counts. Every label
    string is copied, so callers may pass transient text.

    Histogram buckets are Prometheus' defaults stretched to 10 s, which
    covers the RPC deadline (5 s) with room to spare.
*/
#include "metrics.h"

#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static const double s_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define BUCKET_COUNT (sizeof s_buckets / sizeof s_buckets[0])

typedef struct {
    char *labels[3];
    unsigned long long count;
} counter_t;

typedef struct {
    char *label;
    unsigned long long buckets[BUCKET_COUNT]; // cumulative at render time
    unsigned long long count;
    double sum;
} histogram_t;

typedef struct {
    counter_t *items;
    size_t size, capacity;
} counters_t;

typedef struct {
    histogram_t *items;
    size_t size, capacity;
} histograms_t;

struct metrics_t {
    pthread_mutex_t mutex;
    counters_t http_requests;
    histograms_t http_durations;
    histograms_t rpc_durations;
    counters_t rpc_errors;
    long websockets;
};

metrics_t *metrics_new(void)
{
    metrics_t *self = (metrics_t *)zmalloc(sizeof(metrics_t));
    if (self) pthread_mutex_init(&self->mutex, NULL);
    return self;
}

static void s_counters_free(counters_t *counters)
{
    for (size_t i = 0; i < counters->size; i++)
        for (int j = 0; j < 3; j++)
            free(counters->items[i].labels[j]);
    free(counters->items);
}

static void s_histograms_free(histograms_t *histograms)
{
    for (size_t i = 0; i < histograms->size; i++)
        free(histograms->items[i].label);
    free(histograms->items);
}

void metrics_destroy(metrics_t **self_p)
{
    if (!self_p || !*self_p) return;
    metrics_t *self = *self_p;
    s_counters_free(&self->http_requests);
    s_counters_free(&self->rpc_errors);
    s_histograms_free(&self->http_durations);
    s_histograms_free(&self->rpc_durations);
    pthread_mutex_destroy(&self->mutex);
    free(self);
    *self_p = NULL;
}

static bool s_label_equal(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void s_counter_add(counters_t *counters, const char *a, const char *b, const char *c)
{
    for (size_t i = 0; i < counters->size; i++) {
        counter_t *counter = &counters->items[i];
        if (s_label_equal(counter->labels[0], a) && s_label_equal(counter->labels[1], b) &&
            s_label_equal(counter->labels[2], c)) {
            counter->count++;
            return;
        }
    }
    if (counters->size >= METRICS_MAX_SERIES) return;
    if (counters->size == counters->capacity) {
        size_t capacity = counters->capacity ? counters->capacity * 2 : 32;
        counter_t *items = (counter_t *)realloc(counters->items, capacity * sizeof(counter_t));
        if (!items) return;
        counters->items = items;
        counters->capacity = capacity;
    }
    counter_t *counter = &counters->items[counters->size++];
    counter->labels[0] = a ? strdup(a) : NULL;
    counter->labels[1] = b ? strdup(b) : NULL;
    counter->labels[2] = c ? strdup(c) : NULL;
    counter->count = 1;
}

static void s_histogram_observe(histograms_t *histograms, const char *label, double seconds)
{
    histogram_t *histogram = NULL;
    for (size_t i = 0; i < histograms->size && !histogram; i++)
        if (strcmp(histograms->items[i].label, label) == 0) histogram = &histograms->items[i];
    if (!histogram) {
        if (histograms->size >= METRICS_MAX_SERIES) return;
        if (histograms->size == histograms->capacity) {
            size_t capacity = histograms->capacity ? histograms->capacity * 2 : 16;
            histogram_t *items =
                (histogram_t *)realloc(histograms->items, capacity * sizeof(histogram_t));
            if (!items) return;
            histograms->items = items;
            histograms->capacity = capacity;
        }
        histogram = &histograms->items[histograms->size++];
        memset(histogram, 0, sizeof *histogram);
        histogram->label = strdup(label);
    }
    //  Stored per bucket (not cumulative) so an observation is one increment.
    for (size_t b = 0; b < BUCKET_COUNT; b++) {
        if (seconds <= s_buckets[b]) {
            histogram->buckets[b]++;
            break;
        }
    }
    histogram->count++;
    histogram->sum += seconds;
}

const char *metrics_method_label(const char *method)
{
    static const char *known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; method && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(method, known[i]) == 0) return known[i];
    return "OTHER";
}

void metrics_http_observe(metrics_t *self, const char *route, const char *method, int status,
                          double seconds)
{
    char status_text[16];
    snprintf(status_text, sizeof status_text, "%d", status);
    pthread_mutex_lock(&self->mutex);
    s_counter_add(&self->http_requests, route, metrics_method_label(method), status_text);
    s_histogram_observe(&self->http_durations, route, seconds);
    pthread_mutex_unlock(&self->mutex);
}

void metrics_rpc_observe(metrics_t *self, const char *service, int status, double seconds)
{
    const char *code = status == 503 ? "unavailable" : status == 504 ? "timeout" : "internal";
    pthread_mutex_lock(&self->mutex);
    s_histogram_observe(&self->rpc_durations, service, seconds);
    if (status >= 500) s_counter_add(&self->rpc_errors, service, code, NULL);
    pthread_mutex_unlock(&self->mutex);
}

void metrics_websocket_add(metrics_t *self, int delta)
{
    pthread_mutex_lock(&self->mutex);
    self->websockets += delta;
    pthread_mutex_unlock(&self->mutex);
}

//  A label value with \, " and newline escaped, as the format requires.
static void s_label(FILE *out, const char *value)
{
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", out);
        else if (*p == '"')
            fputs("\\\"", out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
}

static void s_render_histograms(FILE *out, const histograms_t *histograms, const char *name,
                                const char *label_name)
{
    for (size_t i = 0; i < histograms->size; i++) {
        const histogram_t *histogram = &histograms->items[i];
        unsigned long long cumulative = 0;
        for (size_t b = 0; b < BUCKET_COUNT; b++) {
            cumulative += histogram->buckets[b];
            fprintf(out, "%s_bucket{%s=\"", name, label_name);
            s_label(out, histogram->label);
            fprintf(out, "\",le=\"%g\"} %llu\n", s_buckets[b], cumulative);
        }
        fprintf(out, "%s_bucket{%s=\"", name, label_name);
        s_label(out, histogram->label);
        fprintf(out, "\",le=\"+Inf\"} %llu\n", histogram->count);
        fprintf(out, "%s_sum{%s=\"", name, label_name);
        s_label(out, histogram->label);
        fprintf(out, "\"} %.6f\n", histogram->sum);
        fprintf(out, "%s_count{%s=\"", name, label_name);
        s_label(out, histogram->label);
        fprintf(out, "\"} %llu\n", histogram->count);
    }
}

char *metrics_render(metrics_t *self, size_t *size_out)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out) return NULL;
    pthread_mutex_lock(&self->mutex);

    fputs("# HELP http_requests_total HTTP requests by route pattern, method and status.\n"
          "# TYPE http_requests_total counter\n",
          out);
    for (size_t i = 0; i < self->http_requests.size; i++) {
        const counter_t *counter = &self->http_requests.items[i];
        fputs("http_requests_total{route=\"", out);
        s_label(out, counter->labels[0]);
        fputs("\",method=\"", out);
        s_label(out, counter->labels[1]);
        fputs("\",status=\"", out);
        s_label(out, counter->labels[2]);
        fprintf(out, "\"} %llu\n", counter->count);
    }

    fputs("# HELP http_request_duration_seconds HTTP request latency by route pattern.\n"
          "# TYPE http_request_duration_seconds histogram\n",
          out);
    s_render_histograms(out, &self->http_durations, "http_request_duration_seconds", "route");

    fputs("# HELP rpc_duration_seconds Latency of calls to services through the broker.\n"
          "# TYPE rpc_duration_seconds histogram\n",
          out);
    s_render_histograms(out, &self->rpc_durations, "rpc_duration_seconds", "service");

    fputs("# HELP rpc_errors_total Calls to services answered with a 5xx, by code.\n"
          "# TYPE rpc_errors_total counter\n",
          out);
    for (size_t i = 0; i < self->rpc_errors.size; i++) {
        const counter_t *counter = &self->rpc_errors.items[i];
        fputs("rpc_errors_total{service=\"", out);
        s_label(out, counter->labels[0]);
        fputs("\",code=\"", out);
        s_label(out, counter->labels[1]);
        fprintf(out, "\"} %llu\n", counter->count);
    }

    fprintf(out,
            "# HELP websocket_connections Open WebSocket connections.\n"
            "# TYPE websocket_connections gauge\n"
            "websocket_connections %ld\n",
            self->websockets);
    pthread_mutex_unlock(&self->mutex);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    if (size_out) *size_out = size;
    return text;
}
