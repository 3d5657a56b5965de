/*  log: JSON lines on stderr.

    Each line is built in a stack buffer and written with one write(2), so
    lines from different threads never interleave (POSIX makes writes up to
    PIPE_BUF atomic on pipes; longer messages are truncated to keep that
    property for the common case of a pipe to a supervisor). The request id
    lives in thread-local storage: set by whoever takes a request, read by
    everything below it without being passed around.
*/
#include "log.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static char s_program[32] = "app";
static log_level_t s_min_level = LOG_INFO;
static __thread char s_request_id[65];

static const char *s_level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *program)
{
    //  Request ids come from libsodium's generator; it must be set up once.
    if (sodium_init() < 0) abort();
    snprintf(s_program, sizeof s_program, "%s", program);
    const char *level = getenv("LOG_LEVEL");
    if (level) {
        for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
            if (strcasecmp(level, s_level_names[i]) == 0) s_min_level = (log_level_t)i;
    }
}

void log_set_request_id(const char *request_id)
{
    snprintf(s_request_id, sizeof s_request_id, "%s", request_id ? request_id : "");
}

const char *log_program(void)
{
    return s_program;
}

const char *log_request_id(void)
{
    return s_request_id;
}

void log_new_request_id(char *buf, size_t size)
{
    unsigned char bytes[8];
    randombytes_buf(bytes, sizeof bytes);
    if (size >= 17)
        sodium_bin2hex(buf, size, bytes, sizeof bytes);
    else if (size > 0)
        buf[0] = '\0';
}

//  Appends text to out as the body of a JSON string (quotes not included).
static size_t s_escape(char *out, size_t room, const char *text)
{
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && used + 7 < room; p++) {
        if (*p == '"' || *p == '\\') {
            out[used++] = '\\';
            out[used++] = (char)*p;
        } else if (*p < 0x20) {
            used += (size_t)snprintf(out + used, room - used, "\\u%04x", *p);
        } else {
            out[used++] = (char)*p;
        }
    }
    out[used] = '\0';
    return used;
}

void log_write(log_level_t level, const char *fmt, ...)
{
    if (level < s_min_level) return;
    if (level > LOG_ERROR) level = LOG_ERROR;
    char message[LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);

    struct timeval now;
    gettimeofday(&now, NULL);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);

    char line[LOG_LINE_MAX];
    int used = snprintf(line, sizeof line,
                        "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"level\":\"%s\","
                        "\"program\":\"%s\",\"request_id\":\"",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, (int)(now.tv_usec / 1000), s_level_names[level], s_program);
    used += (int)s_escape(line + used, sizeof line - (size_t)used, s_request_id);
    used += snprintf(line + used, sizeof line - (size_t)used, "\",\"msg\":\"");
    used += (int)s_escape(line + used, sizeof line - (size_t)used - 4, message);
    used += snprintf(line + used, sizeof line - (size_t)used, "\"}\n");
    if (used > (int)sizeof line) used = (int)sizeof line;
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)used);
    (void)ignored;
}
