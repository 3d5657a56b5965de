/*  fuzz_route: arbitrary request lines against the route table.

    Input: "METHOD PATH[?QUERY]" (split at the first space and the first
    '?'). The matcher must answer one of its four results without crashing,
    and a match must carry parameters that are valid strings; the query
    parser and the URL decoder get the same bytes.
*/
#include "routes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *path = strchr(text, ' ');
    if (path)
        *path++ = '\0';
    else
        path = text + strlen(text);
    char *query = strchr(path, '?');
    if (query) *query++ = '\0';

    size_t count = 0;
    const route_t *table = routes_table(&count);
    route_match_t match;
    route_match_result_t result = routes_match(table, count, text, path, &match);
    switch (result) {
    case ROUTE_MATCH_OK: {
        if (!match.route || !json_is_object(match.params)) abort();
        const char *key;
        json_t *value;
        json_object_foreach(match.params, key, value)
        {
            if (!json_is_string(value) ||
                memchr(json_string_value(value), 0, json_string_length(value)))
                abort();
        }
        break;
    }
    case ROUTE_MATCH_METHOD_NOT_ALLOWED:
        if (match.allow[0] == '\0') abort();
        break;
    case ROUTE_MATCH_BAD_PARAM:
        if (match.bad_param[0] == '\0' || match.params) abort();
        break;
    case ROUTE_MATCH_NOT_FOUND:
        break;
    default:
        abort();
    }
    route_match_clear(&match);

    if (query) {
        json_t *args = json_object();
        char bad[64];
        (void)query_to_args(query, args, 64, bad, sizeof bad);
        json_decref(args);
    }
    char *decoded = malloc(size + 1);
    if (decoded) {
        long length = url_decode((const char *)data, size, true, decoded);
        if (length > (long)size) abort();
        free(decoded);
    }
    free(text);
    return 0;
}
