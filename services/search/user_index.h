/*  user_index: an in-memory trigram index of the users projection, which
    narrows user search's typo-tolerant branches to a few hundred accounts
    before Postgres answers (services/search/users.c, docs/search.md).

    Why. pg_trgm's GIN index keeps every account that shares
    threshold × (query trigrams) of the query's trigrams, because it does
    not know each username's own trigram count: at similarity 0.25 a
    username needs 2 of "mattgew"'s 8 trigrams, so the "  m", " ma" shared
    by every name starting with "ma" make 5,927 candidates whose
    similarity Postgres computes from the heap, for 209 matches
    (docs/benchmarks.md). Here the count of each entry is known, so the
    similarity of a username is computed exactly from the number of
    trigrams it shares with the query:

        similarity = c / (nq + nu - c)        (pg_trgm's CALCSML, float4)

    and only the usernames that reach the threshold are kept, and of those
    only the best SEARCH_USERS_BRANCH in the branch's order (similarity,
    then id), which are the rows Postgres' "ORDER BY similarity DESC, id
    DESC LIMIT n" keeps among all accounts.
    Display names are filtered with the necessary bound of word
    similarity (the best extent's similarity is at most c / nq, the bound
    pg_trgm's GIN index applies), then scored with word similarity
    computed as pg_trgm's calc_word_similarity() does, and kept the same
    way. Each candidate comes with the similarities the ranked query
    orders and scores by (uindex_found_t), so Postgres orders and cuts
    each branch on that small set without computing them, and who is
    found and in which order do not change (tests/unit/test_search_trigram.c
    compares pages with the plain query).

    Trigrams, as pg_trgm makes them: words are runs of alphanumeric
    characters, lower-cased, padded "  word ", every three consecutive
    characters, distinct. This file computes them for ASCII text, where
    that is exact in every locale but a Turkish one (checked once against
    the database's show_trgm(); the index switches itself off if they
    differ). For a username or display name that is not ASCII (which
    characters are letters then depends on the locale), the refresh
    statement sends pg_trgm's own trigrams (show_trgm), so its counts are
    exact too; text that cannot be read either way is a candidate for
    every query. The query is normalised by Postgres (search_norm()); one
    that is still not ASCII takes the plain SQL path. With only [a-z0-9]
    and the padding space, a query trigram is one of 37³ codes, so the
    posting lists are one array indexed by code.

    Freshness. Several search instances may run and only one consumes
    the events, so the index does not trust this process's handlers: it
    reads the rows changed since it last looked. schemas/search/
    004_user_index.sql stamps users (on insert, and on a change of
    username or display name) and deleted_users with the writing
    transaction's id (changed_xid, a btree). A refresh reads the rows
    with changed_xid >= horizon and then sets horizon to the xmin of the
    snapshot it read with: every transaction below it had finished, so
    its rows were seen; rows of transactions still running then are read
    again next time. Refreshes run one at a time (refresh_lock), so a
    later one never applies an older snapshot. users.c refreshes once per
    typo search, in the statement that also normalises the query and
    sets the thresholds, so an account the projection holds is found
    right after.

    Changes replace an entry: the old slot is marked dead (its postings
    stay, and are skipped) and the account gets a new slot; when dead
    slots reach a quarter of them, the next refresh reloads everything.

    Included by users.c only (and its unit test), so the service, the
    unit tests that include users.c and tests/unit/test_search_trigram.c
    get it without a build rule: all functions are static.
*/
#ifndef USER_INDEX_H_INCLUDED
#define USER_INDEX_H_INCLUDED

#include "db.h"
#include "log.h"

#include <float.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UINDEX_ALPHABET 37 // the padding space, 0-9, a-z
#define UINDEX_CODES (UINDEX_ALPHABET * UINDEX_ALPHABET * UINDEX_ALPHABET)
#define UINDEX_TEXT_MAX 512 // longer text is a candidate for every query
#define UINDEX_TRGM_MAX (2 * UINDEX_TEXT_MAX + 2)
#ifndef UINDEX_PAGE       // tests read in smaller pages
#define UINDEX_PAGE 10000 // changed accounts read per statement (a first load: ten)
#define UINDEX_PAGE_TEXT "10000"
#endif

//  Entry flags.
#define UINDEX_DEAD 0x01     // replaced or deleted: postings skip it
#define UINDEX_ANY_USER 0x02 // username not ASCII (or too long): always a candidate
#define UINDEX_ANY_NAME 0x04 // display name not ASCII (or too long): always a candidate

typedef struct {
    uint32_t *slots;
    uint32_t count, cap;
} uindex_list_t;

typedef struct {
    pthread_rwlock_t lock;        // readers: candidates; writer: applying a refresh
    pthread_mutex_t refresh_lock; // one refresh at a time, in snapshot order
    bool checked;                 // the self-check against the database ran
    bool enabled;                 // ... and passed
    bool reload;                  // too many dead slots: read everything again
    uint64_t horizon;             // rows with changed_xid >= horizon are read again
    //  Entries by slot.
    int64_t *ids;
    uint64_t *hashes; // of (username, name_norm): a row read again changes nothing
    uint8_t *user_n;  // distinct trigrams of the username
    uint8_t *name_n;  // ... and of name_norm
    char **texts;     // name_norm when ASCII (word similarity is computed from it), else NULL
    uint8_t *flags;
    uint32_t count, cap, dead;
    //  id -> slot + 1 (0 empty), open addressing, cap a power of two.
    uint32_t *table;
    uint32_t table_cap;
    uindex_list_t *users; // [UINDEX_CODES] username postings
    uindex_list_t *names; // [UINDEX_CODES] display name postings
    uindex_list_t any_user, any_name;
} user_index_t;

//  What one query found (arrays malloc'd; the caller frees them). Each
//  candidate comes with the similarities the ranked query would compute,
//  pg_trgm's to the bit (float4), so Postgres need not compute them: its
//  branch's (similarity of the username, word similarity of the display
//  name) and the greatest of similarity(username), similarity(name_norm)
//  and word_similarity(query, name_norm), which the score is made of.
//  -1 when this index cannot compute it (text it did not index, or not
//  ASCII for word similarity): Postgres computes those.
typedef struct {
    int64_t *user_ids;  // username branch candidates
    float *user_scores; // their username similarity, or -1
    float *user_best;   // their score's similarity, or -1
    size_t user_count;
    int64_t *name_ids;  // display name branch candidates
    float *name_scores; // their word similarity, or -1
    float *name_best;   // their score's similarity, or -1
    size_t name_count;
    size_t user_matches; // usernames at or above the threshold (before keeping the best)
    size_t name_matches; // display names at or above it, or not scored
} uindex_found_t;

//  ---------------------------------------------------------------------
//  Trigrams

//  Code of an ASCII character inside a word or padding, -1 for a separator.
static int s_uindex_symbol(unsigned char c)
{
    if (c == ' ') return 0;
    if (c >= '0' && c <= '9') return 1 + (c - '0');
    if (c >= 'a' && c <= 'z') return 11 + (c - 'a');
    if (c >= 'A' && c <= 'Z') return 11 + (c - 'A');
    return -1;
}

static int s_uindex_cmp_code(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

//  The trigram codes of text (length bytes) in the order pg_trgm makes
//  them (word by word, not sorted, repeats kept) into out (room for
//  UINDEX_TRGM_MAX). Returns their number, or -1 when text is not ASCII
//  or longer than UINDEX_TEXT_MAX (pg_trgm's words then depend on the
//  locale: the caller is conservative).
static int s_uindex_sequence(const char *text, size_t length, uint32_t *out)
{
    if (length > UINDEX_TEXT_MAX) return -1;
    int count = 0;
    size_t at = 0;
    while (at < length) {
        if ((unsigned char)text[at] >= 0x80) return -1;
        if (s_uindex_symbol((unsigned char)text[at]) <= 0) { // a separator (or a space)
            at++;
            continue;
        }
        //  A word: "  w " -> trigrams of consecutive symbols.
        int window[3] = {0, 0, 0};
        size_t end = at;
        while (end < length && s_uindex_symbol((unsigned char)text[end]) > 0)
            end++;
        for (size_t index = at; index <= end; index++) {
            int symbol = index < end ? s_uindex_symbol((unsigned char)text[index]) : 0;
            window[0] = window[1];
            window[1] = window[2];
            window[2] = symbol;
            out[count++] =
                (uint32_t)((window[0] * UINDEX_ALPHABET + window[1]) * UINDEX_ALPHABET + window[2]);
        }
        at = end;
    }
    return count;
}

//  Sorts codes and drops repeats; returns the new count.
static int s_uindex_unique(uint32_t *codes, int count)
{
    if (count <= 1) return count;
    qsort(codes, (size_t)count, sizeof *codes, s_uindex_cmp_code);
    int unique = 1;
    for (int index = 1; index < count; index++)
        if (codes[index] != codes[unique - 1]) codes[unique++] = codes[index];
    return unique;
}

//  The distinct trigram codes of text in ascending order (pg_trgm's
//  generate_trgm), as s_uindex_sequence: their number or -1.
static int uindex_trigrams(const char *text, size_t length, uint32_t *out)
{
    int count = s_uindex_sequence(text, length, out);
    return count < 0 ? count : s_uindex_unique(out, count);
}

//  pg_trgm's similarity from the shared count and both distinct counts.
static float uindex_similarity(int shared, int query_n, int entry_n)
{
    if (query_n <= 0 || entry_n <= 0) return 0.0f;
    return (float)shared / (float)(query_n + entry_n - shared);
}

static bool s_uindex_has(const uint32_t *codes, int count, uint32_t code)
{
    return bsearch(&code, codes, (size_t)count, sizeof *codes, s_uindex_cmp_code) != NULL;
}

//  pg_trgm's word_similarity(query, text) for an ASCII text, computed as
//  its calc_word_similarity() does (the same greedy walk over the text's
//  trigrams in order, the same float arithmetic), from the query's
//  distinct codes (query, nq). Returns -1 when text is not ASCII.
static float uindex_word_similarity(const uint32_t *query, int nq, const char *text)
{
    uint32_t sequence[UINDEX_TRGM_MAX], distinct[UINDEX_TRGM_MAX];
    int length = s_uindex_sequence(text, strlen(text), sequence);
    if (length < 0) return -1.0f;
    memcpy(distinct, sequence, sizeof *sequence * (size_t)length);
    int kinds = s_uindex_unique(distinct, length);
    //  Each position's trigram as an index into distinct; found: in query.
    int index_of[UINDEX_TRGM_MAX], last[UINDEX_TRGM_MAX];
    bool found[UINDEX_TRGM_MAX];
    for (int kind = 0; kind < kinds; kind++) {
        found[kind] = s_uindex_has(query, nq, distinct[kind]);
        last[kind] = -1;
    }
    for (int at = 0; at < length; at++) {
        const uint32_t *hit =
            bsearch(&sequence[at], distinct, (size_t)kinds, sizeof *distinct, s_uindex_cmp_code);
        index_of[at] = (int)(hit - distinct);
    }
    int extent = 0, count = 0, upper = -1, lower = -1;
    float best = 0.0f;
    for (int at = 0; at < length; at++) {
        int kind = index_of[at];
        if (lower >= 0 || found[kind]) {
            if (last[kind] < 0) {
                extent++;
                if (found[kind]) count++;
            }
            last[kind] = at;
        }
        if (!found[kind]) continue;
        upper = at;
        if (lower == -1) {
            lower = at;
            extent = 1;
        }
        float current = uindex_similarity(count, nq, extent);
        int try_count = count, try_extent = extent, first = lower;
        for (int from = lower; from <= upper; from++) {
            float tried = uindex_similarity(try_count, nq, try_extent);
            if (tried > current) {
                current = tried;
                extent = try_extent;
                lower = from;
                count = try_count;
            }
            int gone = index_of[from];
            if (last[gone] == from) {
                try_extent--;
                if (found[gone]) try_count--;
            }
        }
        if (current > best) best = current;
        for (int from = first; from < lower; from++)
            if (last[index_of[from]] == from) last[index_of[from]] = -1;
    }
    return best;
}

//  The three characters of a code (as show_trgm prints an ASCII trigram).
static void uindex_code_text(uint32_t code, char text[4])
{
    static const char symbols[] = " 0123456789abcdefghijklmnopqrstuvwxyz";
    text[0] = symbols[code / (UINDEX_ALPHABET * UINDEX_ALPHABET)];
    text[1] = symbols[code / UINDEX_ALPHABET % UINDEX_ALPHABET];
    text[2] = symbols[code % UINDEX_ALPHABET];
    text[3] = '\0';
}

//  Whether an entry sharing `shared` of the query's query_n trigrams can
//  reach word similarity threshold: the best extent's similarity is at
//  most shared / query_n. A hair of slack against float rounding only adds
//  candidates.
static bool uindex_word_possible(int shared, int query_n, double threshold)
{
    return query_n > 0 && (double)shared >= threshold * query_n - 1e-6;
}

//  ---------------------------------------------------------------------
//  The index

static uint64_t s_uindex_hash(const char *a, const char *b)
{
    uint64_t hash = 1469598103934665603ULL; // FNV-1a over a, NUL, b
    for (const char *p = a;; p++) {
        hash = (hash ^ (unsigned char)*p) * 1099511628211ULL;
        if (!*p) break;
    }
    for (const char *p = b; *p; p++)
        hash = (hash ^ (unsigned char)*p) * 1099511628211ULL;
    return hash;
}

static uint32_t s_uindex_bucket(int64_t id, uint32_t cap)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(x >> 32) & (cap - 1);
}

static void s_uindex_free_lists(uindex_list_t *lists, size_t count)
{
    for (size_t index = 0; lists && index < count; index++)
        free(lists[index].slots);
}

//  Empties the index (keeps the locks and the self-check's verdict).
static void s_uindex_clear(user_index_t *self)
{
    s_uindex_free_lists(self->users, UINDEX_CODES);
    s_uindex_free_lists(self->names, UINDEX_CODES);
    free(self->users);
    free(self->names);
    free(self->any_user.slots);
    free(self->any_name.slots);
    free(self->ids);
    free(self->hashes);
    free(self->user_n);
    free(self->name_n);
    for (uint32_t slot = 0; self->texts && slot < self->count; slot++)
        free(self->texts[slot]);
    free(self->texts);
    self->texts = NULL;
    free(self->flags);
    free(self->table);
    self->users = self->names = NULL;
    self->any_user = self->any_name = (uindex_list_t){0};
    self->ids = NULL;
    self->hashes = NULL;
    self->user_n = self->name_n = self->flags = NULL;
    self->table = NULL;
    self->count = self->cap = self->dead = self->table_cap = 0;
    self->horizon = 0;
    self->reload = false;
}

static int uindex_init(user_index_t *self)
{
    memset(self, 0, sizeof *self);
    if (pthread_rwlock_init(&self->lock, NULL) != 0) return -1;
    if (pthread_mutex_init(&self->refresh_lock, NULL) != 0) {
        pthread_rwlock_destroy(&self->lock);
        return -1;
    }
    return 0;
}

//  Only tests destroy an index: the service's lives as long as the process.
__attribute__((unused)) static void uindex_destroy(user_index_t *self)
{
    s_uindex_clear(self);
    pthread_rwlock_destroy(&self->lock);
    pthread_mutex_destroy(&self->refresh_lock);
}

static int s_uindex_push(uindex_list_t *list, uint32_t slot)
{
    if (list->count == list->cap) {
        uint32_t cap = list->cap ? list->cap * 2 : 4;
        uint32_t *slots = realloc(list->slots, sizeof *slots * cap);
        if (!slots) return -1;
        list->slots = slots;
        list->cap = cap;
    }
    list->slots[list->count++] = slot;
    return 0;
}

//  The slot of id + 1 in the table, or 0.
static uint32_t s_uindex_find(const user_index_t *self, int64_t id)
{
    if (!self->table_cap) return 0;
    for (uint32_t at = s_uindex_bucket(id, self->table_cap);;
         at = (at + 1) & (self->table_cap - 1)) {
        uint32_t entry = self->table[at];
        if (entry == 0 || self->ids[entry - 1] == id) return entry;
    }
}

//  Points id at slot (table kept at most half full).
static int s_uindex_map(user_index_t *self, int64_t id, uint32_t slot)
{
    if ((self->count + 1) * 2 > self->table_cap) {
        uint32_t cap = self->table_cap ? self->table_cap * 2 : 1024;
        uint32_t *table = calloc(cap, sizeof *table);
        if (!table) return -1;
        for (uint32_t at = 0; at < self->table_cap; at++) {
            uint32_t entry = self->table[at];
            if (!entry) continue;
            uint32_t to = s_uindex_bucket(self->ids[entry - 1], cap);
            while (table[to])
                to = (to + 1) & (cap - 1);
            table[to] = entry;
        }
        free(self->table);
        self->table = table;
        self->table_cap = cap;
    }
    uint32_t at = s_uindex_bucket(id, self->table_cap);
    while (self->table[at] && self->ids[self->table[at] - 1] != id)
        at = (at + 1) & (self->table_cap - 1);
    self->table[at] = slot + 1;
    return 0;
}

static int s_uindex_grow(user_index_t *self)
{
    if (self->count < self->cap) return 0;
    uint32_t cap = self->cap ? self->cap * 2 : 1024;
    int64_t *ids = realloc(self->ids, sizeof *ids * cap);
    if (ids) self->ids = ids;
    uint64_t *hashes = realloc(self->hashes, sizeof *hashes * cap);
    if (hashes) self->hashes = hashes;
    uint8_t *user_n = realloc(self->user_n, cap);
    if (user_n) self->user_n = user_n;
    uint8_t *name_n = realloc(self->name_n, cap);
    if (name_n) self->name_n = name_n;
    char **texts = realloc(self->texts, sizeof *texts * cap);
    if (texts) self->texts = texts;
    uint8_t *flags = realloc(self->flags, cap);
    if (flags) self->flags = flags;
    if (!ids || !hashes || !user_n || !name_n || !texts || !flags) return -1;
    self->cap = cap;
    return 0;
}

//  Strict code of a byte of a trigram pg_trgm made (already lower-cased:
//  an upper-case byte there comes from a hashed trigram), -1 otherwise.
static int s_uindex_pg_symbol(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? -1 : s_uindex_symbol(c);
}

static int s_uindex_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

//  Reads pg_trgm's trigrams of a text as the refresh statement sends them
//  for non-ASCII text: show_trgm()'s elements, each hex-encoded, joined by
//  commas. A multibyte trigram is a 3-byte hash that show_trgm prints as
//  "0x…" unless its bytes are printable; only elements that are three
//  bytes of the query alphabet can equal a query trigram, and those get a
//  code in out (ascending, like the elements). *total gets the number of
//  elements (the text's distinct trigram count). Returns the number of
//  codes, or -1 when the list is malformed or too long.
static int uindex_pg_trigrams(const char *list, uint32_t *out, int *total)
{
    int count = 0;
    *total = 0;
    const char *at = list;
    while (*at) {
        const char *end = strchr(at, ',');
        size_t length = end ? (size_t)(end - at) : strlen(at);
        if (length == 0 || length % 2 != 0 || ++*total > UINDEX_TRGM_MAX) return -1;
        int code = 0;
        bool alphabet = length == 6;
        for (size_t index = 0; index < length; index += 2) {
            int high = s_uindex_hex(at[index]), low = s_uindex_hex(at[index + 1]);
            if (high < 0 || low < 0) return -1;
            int symbol = alphabet ? s_uindex_pg_symbol((unsigned char)(high * 16 + low)) : -1;
            if (symbol < 0) alphabet = false;
            code = code * UINDEX_ALPHABET + (symbol < 0 ? 0 : symbol);
        }
        if (alphabet) out[count++] = (uint32_t)code;
        at += length + (end ? 1 : 0);
    }
    return count;
}

//  Adds the postings of text's trigrams for slot to lists: computed here
//  for ASCII text, else read from pg_list (uindex_pg_trigrams); sets flag
//  in *flags instead when neither is possible. *count gets the text's
//  trigram count (0 when flagged).
static int s_uindex_post(uindex_list_t *lists, uindex_list_t *any, const char *text,
                         const char *pg_list, uint32_t slot, uint8_t flag, uint8_t *flags,
                         int *count)
{
    uint32_t codes[UINDEX_TRGM_MAX];
    int n = uindex_trigrams(text, strlen(text), codes);
    int total = n;
    if (n < 0 && pg_list) n = uindex_pg_trigrams(pg_list, codes, &total);
    *count = n < 0 ? 0 : total;
    if (n < 0 || total > UINT8_MAX) {
        *count = 0;
        *flags |= flag;
        return s_uindex_push(any, slot);
    }
    for (int index = 0; index < n; index++)
        if (s_uindex_push(&lists[codes[index]], slot) != 0) return -1;
    return 0;
}

//  Marks id's current entry dead (a change or a deletion).
static void s_uindex_kill(user_index_t *self, int64_t id)
{
    uint32_t entry = s_uindex_find(self, id);
    if (entry && !(self->flags[entry - 1] & UINDEX_DEAD)) {
        self->flags[entry - 1] |= UINDEX_DEAD;
        self->dead++;
    }
}

//  Sets id's entry to (username, name_norm); a NULL username deletes it.
//  user_pg and name_pg: pg_trgm's trigrams of a non-ASCII username or
//  display name (uindex_pg_trigrams), or NULL. Caller holds the write
//  lock. 0 or -1 (out of memory).
static int uindex_put(user_index_t *self, int64_t id, const char *username, const char *name_norm,
                      const char *user_pg, const char *name_pg)
{
    if (!self->users) {
        self->users = calloc(UINDEX_CODES, sizeof *self->users);
        self->names = calloc(UINDEX_CODES, sizeof *self->names);
        if (!self->users || !self->names) return -1;
    }
    if (!username) {
        s_uindex_kill(self, id);
        return 0;
    }
    uint64_t hash = s_uindex_hash(username, name_norm ? name_norm : "");
    uint32_t entry = s_uindex_find(self, id);
    if (entry && !(self->flags[entry - 1] & UINDEX_DEAD) && self->hashes[entry - 1] == hash)
        return 0; // read again, unchanged
    s_uindex_kill(self, id);
    if (s_uindex_grow(self) != 0) return -1;
    uint32_t slot = self->count;
    uint8_t flags = 0;
    int user_n = 0, name_n = 0;
    if (s_uindex_post(self->users, &self->any_user, username, user_pg, slot, UINDEX_ANY_USER,
                      &flags, &user_n) != 0 ||
        s_uindex_post(self->names, &self->any_name, name_norm ? name_norm : "", name_pg, slot,
                      UINDEX_ANY_NAME, &flags, &name_n) != 0)
        return -1;
    self->ids[slot] = id;
    self->hashes[slot] = hash;
    self->user_n[slot] = (uint8_t)user_n;
    self->name_n[slot] = (uint8_t)name_n;
    self->texts[slot] = NULL;
    if (!(flags & UINDEX_ANY_NAME) && name_pg == NULL && name_norm &&
        !(self->texts[slot] = strdup(name_norm)))
        return -1;
    self->flags[slot] = flags;
    self->count++;
    return s_uindex_map(self, id, slot);
}

typedef struct {
    int64_t id;
    float similarity;
    uint32_t slot;
} uindex_scored_t;

//  The typo branches' order: similarity descending, then id descending.
static int s_uindex_cmp_scored(const void *a, const void *b)
{
    const uindex_scored_t *x = a, *y = b;
    if (x->similarity != y->similarity) return x->similarity > y->similarity ? -1 : 1;
    return x->id > y->id ? -1 : x->id < y->id;
}

//  One query's trigrams and, for every slot, how many of them its
//  username and its display name hold (0 for a slot no list named).
typedef struct {
    const uint32_t *codes;
    int n;
    uint8_t *user_counts, *name_counts;
} uindex_query_t;

//  Counts, for every live slot, the query's trigrams its lists hold, into
//  counts (room for self->count, zeroed). touched gets each counted slot
//  once (room for the sum of the lists' lengths). Returns touched's length.
static size_t s_uindex_count(const user_index_t *self, const uindex_list_t *lists,
                             const uint32_t *codes, int n, uint8_t *counts, uint32_t *touched)
{
    size_t used = 0;
    for (int index = 0; index < n; index++) {
        const uindex_list_t *list = &lists[codes[index]];
        for (uint32_t at = 0; at < list->count; at++) {
            uint32_t slot = list->slots[at];
            //  A slot at or past count was being added when memory ran out.
            if (slot >= self->count || (self->flags[slot] & UINDEX_DEAD)) continue;
            if (counts[slot]++ == 0) touched[used++] = slot;
        }
    }
    return used;
}

static size_t s_uindex_postings(const uindex_list_t *lists, const uint32_t *codes, int n)
{
    size_t total = 0;
    for (int index = 0; index < n; index++)
        total += lists[codes[index]].count;
    return total;
}

//  The similarity a candidate's score is made of, as the ranked query
//  computes it: greatest(similarity(username, q), similarity(name_norm,
//  q), word_similarity(q, name_norm)), all float4, so the greatest is one
//  of them to the bit. -1 when one of them cannot be computed here (text
//  not indexed, or a display name that is not ASCII).
static float s_uindex_best(const user_index_t *self, uint32_t slot, const uindex_query_t *query)
{
    if ((self->flags[slot] & (UINDEX_ANY_USER | UINDEX_ANY_NAME)) || !self->texts[slot])
        return -1.0f;
    float best = uindex_similarity(query->user_counts[slot], query->n, self->user_n[slot]);
    float name = uindex_similarity(query->name_counts[slot], query->n, self->name_n[slot]);
    float word = uindex_word_similarity(query->codes, query->n, self->texts[slot]);
    if (word < 0) return -1.0f;
    if (name > best) best = name;
    return word > best ? word : best;
}

//  A branch's candidates being written (s_uindex_keep).
typedef struct {
    int64_t *ids;
    float *scores, *best;
    size_t used;
} uindex_out_t;

static void s_uindex_add(const user_index_t *self, uindex_out_t *out, uint32_t slot, float score,
                         const uindex_query_t *query)
{
    out->ids[out->used] = self->ids[slot];
    out->scores[out->used] = score;
    out->best[out->used++] = score < 0 ? -1.0f : s_uindex_best(self, slot, query);
}

//  Writes to out (malloc'd arrays): the best keep of scored (count, all
//  reaching the threshold) in the typo branches' order, then the extra
//  slots (matches that could not be scored) and the live slots of any
//  (never indexed), these two with score and best -1. The similarities
//  are pg_trgm's to the bit, so Postgres' "ORDER BY similarity DESC, id
//  DESC LIMIT keep" over these keeps the rows it keeps among all
//  accounts: a row it keeps has fewer than keep rows before it among all
//  matches, so among scored too.
static int s_uindex_keep(const user_index_t *self, uindex_scored_t *scored, size_t count,
                         size_t keep, const uint32_t *extra, size_t extra_count,
                         const uindex_list_t *any, const uindex_query_t *query, uindex_out_t *out)
{
    size_t kept = count;
    if (count > keep && keep > 0) {
        qsort(scored, count, sizeof *scored, s_uindex_cmp_scored);
        kept = keep;
    }
    size_t room = kept + extra_count + any->count + 1;
    out->ids = malloc(sizeof *out->ids * room);
    out->scores = malloc(sizeof *out->scores * room);
    out->best = malloc(sizeof *out->best * room);
    out->used = 0;
    if (!out->ids || !out->scores || !out->best) return -1;
    for (size_t at = 0; at < kept; at++)
        s_uindex_add(self, out, scored[at].slot, scored[at].similarity, query);
    for (size_t at = 0; at < extra_count; at++)
        s_uindex_add(self, out, extra[at], -1.0f, query);
    for (uint32_t at = 0; at < any->count; at++)
        if (!(self->flags[any->slots[at]] & UINDEX_DEAD))
            s_uindex_add(self, out, any->slots[at], -1.0f, query);
    return 0;
}

//  The username candidates of an ASCII query: the usernames whose
//  similarity reaches threshold (s_uindex_keep). touched: the slots
//  s_uindex_count found (used of them).
static int s_uindex_user_candidates(const user_index_t *self, const uindex_query_t *query,
                                    const uint32_t *touched, size_t used, double threshold,
                                    size_t keep, uindex_found_t *found)
{
    uindex_scored_t *scored = malloc(sizeof *scored * (used + 1));
    if (!scored) return -1;
    size_t matches = 0;
    for (size_t at = 0; at < used; at++) {
        uint32_t slot = touched[at];
        float similarity =
            uindex_similarity(query->user_counts[slot], query->n, self->user_n[slot]);
        //  As pg_trgm compares: the float4 similarity against the double.
        if ((double)similarity >= threshold)
            scored[matches++] = (uindex_scored_t){self->ids[slot], similarity, slot};
    }
    found->user_matches = matches;
    uindex_out_t out = {0};
    int rc = s_uindex_keep(self, scored, matches, keep, NULL, 0, &self->any_user, query, &out);
    found->user_ids = out.ids;
    found->user_scores = out.scores;
    found->user_best = out.best;
    found->user_count = out.used;
    free(scored);
    return rc;
}

//  The display name candidates: the names holding enough of the query's
//  trigrams to reach the word similarity threshold; of those, ASCII ones
//  are scored exactly (uindex_word_similarity) and kept as usernames are,
//  the others are all kept.
static int s_uindex_name_candidates(const user_index_t *self, const uindex_query_t *query,
                                    const uint32_t *touched, size_t used, double threshold,
                                    size_t keep, uindex_found_t *found)
{
    uindex_scored_t *scored = malloc(sizeof *scored * (used + 1));
    uint32_t *extra = malloc(sizeof *extra * (used + 1));
    int rc = scored && extra ? 0 : -1;
    size_t matches = 0, extras = 0;
    for (size_t at = 0; rc == 0 && at < used; at++) {
        uint32_t slot = touched[at];
        if (!uindex_word_possible(query->name_counts[slot], query->n, threshold)) continue;
        float similarity = self->texts[slot]
                               ? uindex_word_similarity(query->codes, query->n, self->texts[slot])
                               : -1.0f;
        if (similarity < 0)
            extra[extras++] = slot;
        else if ((double)similarity >= threshold)
            scored[matches++] = (uindex_scored_t){self->ids[slot], similarity, slot};
    }
    found->name_matches = matches + extras;
    uindex_out_t out = {0};
    if (rc == 0)
        rc =
            s_uindex_keep(self, scored, matches, keep, extra, extras, &self->any_name, query, &out);
    found->name_ids = out.ids;
    found->name_scores = out.scores;
    found->name_best = out.best;
    found->name_count = out.used;
    free(scored);
    free(extra);
    return rc;
}

static void uindex_found_free(uindex_found_t *found)
{
    free(found->user_ids);
    free(found->user_scores);
    free(found->user_best);
    free(found->name_ids);
    free(found->name_scores);
    free(found->name_best);
    memset(found, 0, sizeof *found);
}

//  Candidates of both typo branches for query (already search_norm'd and
//  ASCII: the caller checks), with their similarities (uindex_found_t).
//  keep: rows each branch keeps. Takes the read lock. 0, or -1 (out of
//  memory, or not ASCII).
static int uindex_candidates(user_index_t *self, const char *query, double similarity_threshold,
                             double word_threshold, size_t keep, uindex_found_t *found)
{
    memset(found, 0, sizeof *found);
    uint32_t codes[UINDEX_TRGM_MAX];
    int n = uindex_trigrams(query, strlen(query), codes);
    if (n < 0) return -1;
    pthread_rwlock_rdlock(&self->lock);
    bool indexed = self->users != NULL;
    size_t user_postings = indexed ? s_uindex_postings(self->users, codes, n) : 0;
    size_t name_postings = indexed ? s_uindex_postings(self->names, codes, n) : 0;
    //  Both counts are kept until the end: a candidate of one branch is
    //  scored with the other's count too.
    uindex_query_t scoring = {codes, n, calloc(self->count + 1, 1), calloc(self->count + 1, 1)};
    uint32_t *user_touched = malloc(sizeof *user_touched * (user_postings + 1));
    uint32_t *name_touched = malloc(sizeof *name_touched * (name_postings + 1));
    int rc = scoring.user_counts && scoring.name_counts && user_touched && name_touched ? 0 : -1;
    if (rc == 0 && indexed) {
        size_t users =
            s_uindex_count(self, self->users, codes, n, scoring.user_counts, user_touched);
        size_t names =
            s_uindex_count(self, self->names, codes, n, scoring.name_counts, name_touched);
        rc = s_uindex_user_candidates(self, &scoring, user_touched, users, similarity_threshold,
                                      keep, found);
        if (rc == 0)
            rc = s_uindex_name_candidates(self, &scoring, name_touched, names, word_threshold, keep,
                                          found);
    } else if (rc == 0) {
        //  Nothing loaded yet: no candidates (empty arrays, not NULL).
        found->user_ids = malloc(sizeof(int64_t));
        found->name_ids = malloc(sizeof(int64_t));
        rc = found->user_ids && found->name_ids ? 0 : -1;
    }
    pthread_rwlock_unlock(&self->lock);
    free(scoring.user_counts);
    free(scoring.name_counts);
    free(user_touched);
    free(name_touched);
    if (rc != 0) uindex_found_free(found);
    return rc;
}

//  ids as a Postgres array literal "{1,2,3}" (caller frees), or NULL.
//  The tests' (users.c writes its arrays with their similarities).
__attribute__((unused)) static char *uindex_array_text(const int64_t *ids, size_t count)
{
    char *text = malloc(count * 21 + 3);
    if (!text) return NULL;
    size_t used = 0;
    text[used++] = '{';
    for (size_t index = 0; index < count; index++)
        used += (size_t)sprintf(text + used, "%s%" PRId64, index ? "," : "", ids[index]);
    text[used++] = '}';
    text[used] = '\0';
    return text;
}

//  Appends to a float4[] literal being built in text (at *used; room for
//  16 bytes a value) value as Postgres reads it back bit for bit (nine
//  significant digits), or NULL for a negative value (not computed).
static void uindex_float_append(char *text, size_t *used, bool first, float value)
{
    if (value < 0)
        *used += (size_t)sprintf(text + *used, "%sNULL", first ? "" : ",");
    else
        *used += (size_t)sprintf(text + *used, "%s%.9g", first ? "" : ",", (double)value);
}

//  ---------------------------------------------------------------------
//  Reading the database

//  The self-check's text: every printable ASCII character, in words of
//  every shape (case, digits, separators, one and two letters).
static const char s_uindex_probe[] =
    "Ab_cD.e9 x 12 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ Zz0 qu-x y_Y mattgew ann.lee K IJ";

//  Whether this database's show_trgm() agrees with this file on ASCII text
//  (a locale could differ: Turkish lower-cases "I" to a dotless i).
static bool s_uindex_self_check(db_t *db)
{
    const char *params[] = {s_uindex_probe};
    PGresult *res = db_query(db,
                             "SELECT array_to_string(ARRAY(SELECT t FROM unnest(show_trgm($1)) t"
                             " ORDER BY t COLLATE \"C\"), '|')",
                             1, params);
    if (!res || PQntuples(res) != 1) {
        PQclear(res);
        return false;
    }
    uint32_t codes[UINDEX_TRGM_MAX];
    int n = uindex_trigrams(s_uindex_probe, strlen(s_uindex_probe), codes);
    char mine[UINDEX_TRGM_MAX * 4 + 1] = "";
    size_t used = 0;
    for (int index = 0; index < n; index++) {
        char text[4];
        uindex_code_text(codes[index], text);
        used += (size_t)snprintf(mine + used, sizeof mine - used, "%s%s", index ? "|" : "", text);
    }
    bool ok = strcmp(mine, PQgetvalue(res, 0, 0)) == 0;
    if (!ok) log_warn("user index: pg_trgm differs from this build on ASCII; index off");
    PQclear(res);
    return ok;
}

//  After a large load: posting lists shrink to their length (they grew by
//  doubling), and the load's freed memory (its result rows) goes back to
//  the system, so the process keeps what the index holds and no more.
static void s_uindex_trim(user_index_t *self)
{
    pthread_rwlock_wrlock(&self->lock);
    uindex_list_t *sets[] = {self->users, self->names};
    for (size_t set = 0; set < 2; set++)
        for (size_t code = 0; sets[set] && code < UINDEX_CODES; code++) {
            uindex_list_t *list = &sets[set][code];
            if (list->cap <= list->count || list->count == 0) continue;
            uint32_t *slots = realloc(list->slots, sizeof *slots * list->count);
            if (!slots) continue;
            list->slots = slots;
            list->cap = list->count;
        }
    pthread_rwlock_unlock(&self->lock);
    malloc_trim(0);
}

//  Applies one page of a refresh (uindex_refresh) under the write lock.
//  Returns 0, or -1 out of memory; *last gets the page's largest id and
//  *changed its number of accounts.
static int s_uindex_apply(user_index_t *self, const PGresult *res, int64_t *last, int *changed)
{
    int rc = 0, rows = PQntuples(res);
    *changed = 0;
    if (!self->enabled || PQgetisnull(res, 0, 1)) return 0;
    pthread_rwlock_wrlock(&self->lock);
    for (int row = 0; row < rows && rc == 0; row++) {
        if (PQgetisnull(res, row, 1)) continue;
        int64_t id = strtoll(PQgetvalue(res, row, 1), NULL, 10);
        const char *username = PQgetisnull(res, row, 2) ? NULL : PQgetvalue(res, row, 2);
        rc = uindex_put(self, id, username, PQgetvalue(res, row, 3),
                        PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4),
                        PQgetisnull(res, row, 5) ? NULL : PQgetvalue(res, row, 5));
        if (id > *last) *last = id;
        (*changed)++;
    }
    pthread_rwlock_unlock(&self->lock);
    return rc;
}

//  Reads the accounts changed since the last refresh into the index, with
//  sql[1] (sql[0] for the first load, when every account is read), whose
//  $1 is the horizon and $2 the id after which to read (params[0] and
//  params[1], set here; params[2..] are the caller's), and which answer at
//  most UINDEX_PAGE accounts ordered by id, in columns: the snapshot's xmin; a changed row (id,
//  username, name_norm, then pg_trgm's trigrams of a non-ASCII username and name_norm, else NULL; a
//  NULL username for a deleted account) or NULLs; and at out_column a value of the caller's, copied
//  to out (size bytes;
//  "" when it does not fit). A full page is followed by the next one;
//  the horizon becomes the first page's xmin (later pages only see
//  newer data, and what they miss is read again next time). Returns 1
//  when the index can be used, 0 when it is off (the statement ran), -1
//  on a database error.
static int uindex_refresh(user_index_t *self, db_t *db, const char *const sql[2], int count,
                          const char **params, int out_column, char *out, size_t size)
{
    out[0] = '\0';
    pthread_mutex_lock(&self->refresh_lock);
    if (!self->checked) {
        self->enabled = s_uindex_self_check(db);
        self->checked = true;
    }
    if (self->reload) {
        pthread_rwlock_wrlock(&self->lock);
        bool enabled = self->enabled;
        s_uindex_clear(self);
        self->checked = self->enabled = enabled;
        pthread_rwlock_unlock(&self->lock);
    }
    char horizon[24], after[24];
    snprintf(horizon, sizeof horizon, "%" PRIu64, self->horizon);
    params[0] = horizon;
    params[1] = after;
    uint64_t next = 0;
    int64_t last = 0;
    int rc = 0, changed = UINDEX_PAGE, total = 0;
    for (int page = 0; rc == 0 && changed == UINDEX_PAGE; page++) {
        snprintf(after, sizeof after, "%" PRId64, last);
        PGresult *res = db_query(db, sql[self->horizon > 0], count, params);
        if (!res || PQntuples(res) < 1 || PQnfields(res) <= out_column) {
            PQclear(res);
            rc = -2;
            break;
        }
        if (page == 0) {
            next = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
            if (strlen(PQgetvalue(res, 0, out_column)) < size)
                strcpy(out, PQgetvalue(res, 0, out_column));
        }
        rc = s_uindex_apply(self, res, &last, &changed);
        total += changed;
        PQclear(res);
    }
    if (rc == 0) {
        self->horizon = next;
        self->reload = self->dead > 1024 && self->dead * 4 > self->count;
    } else if (rc == -1)
        self->reload = true; // out of memory half way: start again from nothing
    if (rc == 0 && total > 1000) {
        s_uindex_trim(self);
        log_info("user index: read %d changed accounts, %u entries", total, self->count);
    }
    bool enabled = self->enabled;
    pthread_mutex_unlock(&self->refresh_lock);
    if (rc != 0) return -1;
    return enabled ? 1 : 0;
}

#endif
