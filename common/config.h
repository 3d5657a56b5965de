/*  config: configuration from the environment, with local defaults.

    Every binary reads its settings through these getters so that the value
    it runs with is the value it logs: config_log() prints the effective
    configuration as one JSON line at start, with secrets masked (names that
    contain SECRET, PASSWORD or KEY, and the password inside a URL).
*/
#ifndef CONFIG_H_INCLUDED
#define CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

//  Returns the variable's value, or fallback when unset or empty. Borrowed.
const char *config_str(const char *name, const char *fallback);

//  Returns the variable parsed as a base-10 integer, or fallback when unset,
//  empty or not a whole number.
int64_t config_int(const char *name, int64_t fallback);

//  Logs {"msg":"config", NAME: value, ...} for the NULL-terminated list of
//  names, masking secrets. Unset names show their fallback via config_str's
//  rules only if the caller already read them (the last value read is kept).
void config_log(const char *const *names);

//  Masks "user:password@" in a URL into "user:***@". Caller frees.
char *config_mask_url(const char *url);

//  True when argv holds --help or -h; prints usage (the program's text plus
//  the list of variables with defaults) to stdout.
bool config_wants_help(int argc, char **argv, const char *usage);

#endif
