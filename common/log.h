/*  log: one JSON object per line on stderr.

    {"ts":"2026-11-27T20:11:53.123Z","level":"info","program":"identity",
     "request_id":"…","msg":"…"}

    The request id is thread-local: a worker sets it when it takes a request
    and clears it when done, so every line written while serving a request
    (and every RPC and event it causes) carries the same id. LOG_LEVEL picks
    the least severe level printed (debug|info|warn|error, default info).
*/
#ifndef LOG_H_INCLUDED
#define LOG_H_INCLUDED

#include <stddef.h>
//  <syslog.h> (pulled in by czmq.h) defines LOG_DEBUG 7 and LOG_INFO 6:
//  included after this header it would silently turn log_info() into an
//  out-of-range level, before it the enum would not compile. Include it
//  here, once, and take the two names back (its include guard keeps them).
#include <syslog.h>
#undef LOG_DEBUG
#undef LOG_INFO

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

void log_init(const char *program);
const char *log_program(void);                   // the name given to log_init ("app" before)
void log_set_request_id(const char *request_id); // NULL clears; copied
const char *log_request_id(void);                // borrowed; "" when none
void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

//  Writes a fresh random request id (16 hex chars) into buf (>= 17 bytes).
void log_new_request_id(char *buf, size_t size);

#endif
