/*  validate: the identity rules for usernames, emails and websites.

    args.h has already checked the JSON type, UTF-8, NUL and the length in
    code points; these functions add the shape rules. They are deliberately
    simple and strict rather than RFC-complete: an email needs one '@' with
    text on both sides and a dot inside the domain, and no spaces or control
    characters; a website is "" or an http(s) URL with a host.
*/
#include "identity.h"

#include <ctype.h>
#include <string.h>

static void s_flag(json_t *fields, const char *name, const char *message)
{
    if (!json_object_get(fields, name)) json_object_set_new(fields, name, json_string(message));
}

static bool s_has_space_or_control(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) return true;
    return false;
}

bool validate_lower(const char *text, char *out, size_t size)
{
    size_t length = strlen(text);
    if (length + 1 > size) return false;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
    }
    out[length] = '\0';
    return true;
}

bool validate_username(const char *username, char *out, size_t size, json_t *fields)
{
    static const char *message = "must be 1 to 30 characters of a-z, 0-9, '.' and '_'";
    size_t length = strlen(username);
    if (length < 1 || length > IDENTITY_USERNAME_MAX || !validate_lower(username, out, size)) {
        s_flag(fields, "username", message);
        return false;
    }
    for (size_t i = 0; i < length; i++) {
        char c = out[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_')) {
            s_flag(fields, "username", message);
            return false;
        }
    }
    return true;
}

bool validate_email(const char *email, json_t *fields)
{
    const char *at = strchr(email, '@');
    bool ok = at && at != email && !strchr(at + 1, '@') && !s_has_space_or_control(email) &&
              strlen(email) <= IDENTITY_EMAIL_MAX;
    if (ok) {
        //  A dot inside the domain with text on both sides of it.
        const char *domain = at + 1;
        size_t length = strlen(domain);
        const char *dot = memchr(domain, '.', length);
        const char *last = strrchr(domain, '.');
        ok = dot && dot != domain && last && last[1] != '\0';
    }
    if (!ok) s_flag(fields, "email", "must be an email address like name@example.com");
    return ok;
}

bool validate_website(const char *website, json_t *fields)
{
    if (!*website) return true;
    const char *host = NULL;
    if (strncasecmp(website, "http://", 7) == 0)
        host = website + 7;
    else if (strncasecmp(website, "https://", 8) == 0)
        host = website + 8;
    bool ok = host && !s_has_space_or_control(website) && strcspn(host, "/?#") > 0;
    if (!ok) s_flag(fields, "website", "must be empty or an http:// or https:// address");
    return ok;
}
