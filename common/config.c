/*  config: environment getters and the effective-configuration log line.

    The getters are thin on purpose: configuration is read once at start by
    main() and kept in the program's own structs. config_log() re-reads the
    names it is given, so what it prints is what getenv returns now (the
    programs set defaults into the environment with setenv(…, 0) when they
    want a default to show up in the log).
*/
#include "config.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *config_str(const char *name, const char *fallback)
{
    const char *value = getenv(name);
    return (value && *value) ? value : fallback;
}

int64_t config_int(const char *name, int64_t fallback)
{
    const char *value = getenv(name);
    if (!value || !*value) return fallback;
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll(value, &end, 10);
    if (errno || !end || *end != '\0') return fallback;
    return parsed;
}

static bool s_is_secret_name(const char *name)
{
    return strstr(name, "SECRET") || strstr(name, "PASSWORD") || strstr(name, "KEY");
}

char *config_mask_url(const char *url)
{
    //  scheme://user:password@host… -> scheme://user:***@host…
    const char *scheme_end = strstr(url, "://");
    const char *at = strchr(url, '@');
    if (!scheme_end || !at || at < scheme_end) return strdup(url);
    const char *colon = memchr(scheme_end + 3, ':', (size_t)(at - (scheme_end + 3)));
    if (!colon) return strdup(url);
    size_t head = (size_t)(colon - url) + 1;
    size_t size = head + 3 + strlen(at) + 1;
    char *masked = malloc(size);
    if (!masked) return NULL;
    snprintf(masked, size, "%.*s***%s", (int)head, url, at);
    return masked;
}

void config_log(const char *const *names)
{
    json_t *fields = json_object();
    for (size_t i = 0; names && names[i]; i++) {
        const char *value = getenv(names[i]);
        if (!value) {
            json_object_set_new(fields, names[i], json_null());
        } else if (s_is_secret_name(names[i])) {
            json_object_set_new(fields, names[i], json_string(*value ? "***" : ""));
        } else if (strstr(value, "://")) {
            char *masked = config_mask_url(value);
            json_object_set_new(fields, names[i], json_string(masked ? masked : ""));
            free(masked);
        } else {
            json_object_set_new(fields, names[i], json_stringn_nocheck(value, strlen(value)));
        }
    }
    char *text = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    log_info("config %s", text ? text : "{}");
    free(text);
    json_decref(fields);
}

bool config_wants_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
            fputs(usage, stdout);
            if (usage[0] && usage[strlen(usage) - 1] != '\n') fputc('\n', stdout);
            return true;
        }
    }
    return false;
}
