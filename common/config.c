/*  config - the YAML configuration, loaded strictly into typed structs.
 *
 *  Loading is three passes over one file of at most 1 MiB:
 *
 *  1. parse: libyaml's event parser builds a small tree of our own (scalars,
 *     mappings, sequences, each with its 1-based position).  We do not use
 *     libyaml's document loader, because it resolves aliases into shared nodes:
 *     a billion-laughs file or a cyclic alias would make a recursive walker
 *     explode or never end.  Here every anchor, alias and explicit tag is an
 *     error at its position, nesting deeper than 64 stops the parse, and a
 *     second document is refused.  A syntax error ends the load (libyaml cannot
 *     go on after one) with its problem and position.
 *
 *  2. walk: each section is described by a table of fields (key, type, where it
 *     goes in the struct, bounds, a syntax check), in the manner of Fluent Bit's
 *     config maps, and one generic walker fills the struct from the tree.  The
 *     tables are the single place where keys, types and bounds live; unknown keys,
 *     duplicate keys, wrong types and values out of range are reported there, so
 *     every section gets the same strictness for free.  Sections whose keys are
 *     names chosen by the operator (backends, actions, params) and the agent list
 *     are small hand-written functions that call the walker per entry.
 *
 *  3. cross-check: what needs more than one value (an agent's backend and actions
 *     must be declared, its fallback must be one of its actions, agent names are
 *     unique, defaults that derive from other keys) runs after the walk; agents
 *     are walked last so that their references can be resolved whatever the order
 *     of sections in the file.
 *
 *  Every problem is collected (up to 100) instead of stopping at the first, sorted
 *  by position and printed as "FILE:LINE:COL: message", so an operator fixes a
 *  file in one round.  The config is built as the walk goes and destroyed if any
 *  problem was found: there is one ownership rule (the config owns all it points
 *  to) and one cleanup path.  Rule files are resolved, positioned and checked for
 *  who may write them here (StrictModes, with the config file and agent_binary);
 *  whether they load is the gate module's business (meshd --check-config).
 *
 *  The file is read once, hashed (SHA-256), and parsed once; the config keeps the
 *  bytes, the hash and the tree of that parse (with every key's position), so that
 *  meshd can snapshot exactly what it checked and compare configs on reload without
 *  parsing again.  An agent loads the snapshot by its hash (mesh_config_load_snapshot).
 */
#include "config.h"
#include "kafka_conf.h"
#include "log.h"
#include "silence.h"
#include "tzday.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>
#include <yaml.h>

#define S_MAX_BYTES     (1024 * 1024)   //  larger config files are refused
#define S_MAX_DEPTH     64              //  deeper nesting is refused
#define S_MAX_PROBLEMS  100             //  problems kept and printed per load
#define S_MAX_FIELDS    32              //  keys in one section table
#define S_PATH_MAX      320             //  key paths in messages ("agents[3].reason.backend")

//  --------------------------------------------------------------------------
//  The tree the parser builds: what the walker reads.

typedef enum {
    S_SCALAR,
    S_MAPPING,                          //  kids: key, value, key, value, ...
    S_SEQUENCE,                         //  kids: items
    S_INVALID,                          //  an alias, already reported: skipped quietly
} s_kind_t;

typedef struct _s_node_t s_node_t;
struct _s_node_t {
    s_kind_t kind;
    int line, col;                      //  1-based
    char *text;                         //  scalars: the value, NUL-terminated
    size_t length;                      //  scalars: bytes in text (a "\0" escape makes it differ)
    bool plain;                         //  scalars: unquoted (may be null, number, boolean)
    s_node_t **kids;
    size_t count, alloc;
};

//  --------------------------------------------------------------------------
//  The state of one load.

typedef struct {
    int line, col;
    size_t seq;                         //  order found, to keep the sort stable
    char *msg;                          //  NULL if formatting it ran out of memory
} s_problem_t;

typedef struct {
    const char *file;                   //  as given, for messages
    char *dir;                          //  directory of the file, for relative paths
    s_problem_t problems [S_MAX_PROBLEMS];
    size_t stored;
    size_t found;
    int over_line, over_col;            //  where the first problem that was not stored is
    bool oom_reported;
    s_node_t *agents;                   //  walked last, after backends and actions
    bool embedded_topics_given;
    bool snapshot;                      //  loading a snapshot: rule files are not read
    s_node_t *actions;                  //  the actions: section, for positions of topics
} s_ctx_t;

static void s_problem (s_ctx_t *ctx, int line, int col, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_problem (s_ctx_t *ctx, int line, int col, const char *fmt, ...)
{
    ctx->found++;
    if (ctx->stored == S_MAX_PROBLEMS) {
        if (ctx->found == S_MAX_PROBLEMS + 1) {
            ctx->over_line = line;
            ctx->over_col = col;
        }
        return;
    }
    s_problem_t *problem = &ctx->problems [ctx->stored];
    problem->line = line;
    problem->col = col;
    problem->seq = ctx->stored++;
    va_list ap;
    va_start (ap, fmt);
    if (vasprintf (&problem->msg, fmt, ap) < 0)
        problem->msg = NULL;
    va_end (ap);
}

#define s_at(ctx, node, ...) s_problem ((ctx), (node)->line, (node)->col, __VA_ARGS__)

static void
s_oom (s_ctx_t *ctx)
{
    if (!ctx->oom_reported)
        s_problem (ctx, 1, 1, "out of memory while loading the configuration");
    ctx->oom_reported = true;
}

static char *
s_strdup (s_ctx_t *ctx, const char *text)
{
    char *copy = strdup (text);
    if (!copy)
        s_oom (ctx);
    return copy;
}

static void *
s_calloc (s_ctx_t *ctx, size_t count, size_t size)
{
    void *block = calloc (count ? count : 1, size);
    if (!block)
        s_oom (ctx);
    return block;
}

static int
s_problem_cmp (const void *a, const void *b)
{
    const s_problem_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

//  Sort, print and free the problems; returns how many were printed.
static int
s_report (s_ctx_t *ctx, FILE *err)
{
    qsort (ctx->problems, ctx->stored, sizeof ctx->problems [0], s_problem_cmp);
    for (size_t i = 0; i < ctx->stored; i++) {
        s_problem_t *problem = &ctx->problems [i];
        if (err)
            fprintf (err, "%s:%d:%d: %s\n", ctx->file, problem->line, problem->col,
                     problem->msg ? problem->msg : "(out of memory formatting a problem)");
        free (problem->msg);
    }
    if (err && ctx->found > ctx->stored)
        fprintf (err, "%s:%d:%d: too many problems (%zu); only the first %d are shown\n",
                 ctx->file, ctx->over_line, ctx->over_col, ctx->found, S_MAX_PROBLEMS);
    return (int) ctx->stored;
}

//  A value as it may appear in a message: at most 40 bytes, control characters
//  replaced, so that neither a huge nor a hostile value makes an unreadable line.
static const char *
s_show (const char *text, char *buf, size_t size)
{
    size_t out = 0, limit = size - 4;
    for (const char *p = text; *p; p++) {
        if (out == limit || out == 40) {
            memcpy (buf + out, "...", 4);
            return buf;
        }
        unsigned char c = (unsigned char) *p;
        buf [out++] = (c < 0x20 || c == 0x7f) ? '?' : (char) c;
    }
    buf [out] = 0;
    return buf;
}

//  Key paths for messages: "agents[0].detector", "backends.local.url".  Keys in
//  them are cut at 40 bytes, so a path never nears S_PATH_MAX in practice; if it
//  did, it would be cut too.
static void
s_join (char *out, const char *parent, const char *key)
{
    char shown [64];
    s_show (key, shown, sizeof shown);
    snprintf (out, S_PATH_MAX, "%.*s%s%s", S_PATH_MAX - 72, parent, *parent ? "." : "",
              shown);
}

static void
s_index (char *out, const char *parent, size_t index)
{
    snprintf (out, S_PATH_MAX, "%.*s[%zu]", S_PATH_MAX - 24, parent, index);
}

//  --------------------------------------------------------------------------
//  Pass 1: parse into a tree, refusing what the walker must never see.

static s_node_t *
s_node_new (s_ctx_t *ctx, s_kind_t kind, int line, int col)
{
    s_node_t *self = s_calloc (ctx, 1, sizeof *self);
    if (self) {
        self->kind = kind;
        self->line = line;
        self->col = col;
    }
    return self;
}

static void
s_node_destroy (s_node_t **self_p)
{
    s_node_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        s_node_destroy (&self->kids [i]);
    free (self->kids);
    free (self->text);
    free (self);
    *self_p = NULL;
}

//  Takes ownership of CHILD; -1 (child destroyed) if out of memory.
static int
s_node_append (s_ctx_t *ctx, s_node_t *self, s_node_t *child)
{
    if (self->count == self->alloc) {
        size_t alloc = self->alloc ? self->alloc * 2 : 8;
        s_node_t **kids = realloc (self->kids, alloc * sizeof *kids);
        if (!kids) {
            s_oom (ctx);
            s_node_destroy (&child);
            return -1;
        }
        self->kids = kids;
        self->alloc = alloc;
    }
    self->kids [self->count++] = child;
    return 0;
}

//  Line and column of a byte offset (the reader reports bad UTF-8 by offset only).
static void
s_offset_pos (const char *buf, size_t len, size_t offset, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (buf [i] == '\n') {
            ++*line;
            *col = 1;
        }
        else
            ++*col;
    }
}

static void
s_syntax_error (s_ctx_t *ctx, yaml_parser_t *parser, const char *buf, size_t len)
{
    if (parser->error == YAML_MEMORY_ERROR) {
        s_oom (ctx);
        return;
    }
    const char *problem = parser->problem ? parser->problem : "unknown problem";
    int line, col;
    if (parser->error == YAML_READER_ERROR) {
        s_offset_pos (buf, len, parser->problem_offset, &line, &col);
        if (parser->problem_value != -1)
            s_problem (ctx, line, col, "YAML syntax error: %s (byte 0x%02x); the file must be "
                       "UTF-8", problem, (unsigned) parser->problem_value & 0xff);
        else
            s_problem (ctx, line, col, "YAML syntax error: %s", problem);
        return;
    }
    line = (int) parser->problem_mark.line + 1;
    col = (int) parser->problem_mark.column + 1;
    if (parser->context)
        s_problem (ctx, line, col, "YAML syntax error: %s (%s that starts at %d:%d)", problem,
                   parser->context, (int) parser->context_mark.line + 1,
                   (int) parser->context_mark.column + 1);
    else
        s_problem (ctx, line, col, "YAML syntax error: %s", problem);
}

//  Anchors, aliases and tags are refused where they appear.  Refusing them
//  outright (rather than capping expansions) makes alias bombs and cycles
//  impossible, and a config never needs them.
static void
s_check_properties (s_ctx_t *ctx, int line, int col, const yaml_char_t *anchor,
                    const yaml_char_t *tag)
{
    char shown [64];
    if (anchor)
        s_problem (ctx, line, col, "anchor '&%s' is not allowed: anchors and aliases are refused; "
                   "write the value out in full",
                   s_show ((const char *) anchor, shown, sizeof shown));
    if (tag)
        s_problem (ctx, line, col, "tag '%s' is not allowed: each key has one type (quote a "
                   "value to make it a string)", s_show ((const char *) tag, shown, sizeof shown));
}

//  Returns the root (a mapping, sequence or scalar; an empty mapping for an empty
//  file), or NULL if the file could not be parsed (problems were reported).
static s_node_t *
s_parse (s_ctx_t *ctx, const char *buf, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize (&parser)) {
        s_oom (ctx);
        return NULL;
    }
    yaml_parser_set_input_string (&parser, (const unsigned char *) buf, len);

    s_node_t *root = NULL;
    s_node_t *stack [S_MAX_DEPTH];
    size_t depth = 0;
    int documents = 0;
    bool ok = true, done = false;
    while (ok && !done) {
        yaml_event_t event;
        if (!yaml_parser_parse (&parser, &event)) {
            s_syntax_error (ctx, &parser, buf, len);
            ok = false;
            break;
        }
        int line = (int) event.start_mark.line + 1;
        int col = (int) event.start_mark.column + 1;
        s_node_t *node = NULL;
        bool opens = false;
        char shown [64];
        switch (event.type) {
            case YAML_STREAM_END_EVENT:
                done = true;
                break;
            case YAML_DOCUMENT_START_EVENT:
                if (++documents > 1) {
                    s_problem (ctx, line, col, "a second YAML document starts here: the config is "
                               "exactly one document (remove the '---' or split the file)");
                    done = true;
                }
                break;
            case YAML_ALIAS_EVENT:
                s_problem (ctx, line, col, "alias '*%s' is not allowed: anchors and aliases are "
                           "refused; write the value out in full",
                           s_show ((const char *) event.data.alias.anchor, shown, sizeof shown));
                node = s_node_new (ctx, S_INVALID, line, col);
                ok = node != NULL;
                break;
            case YAML_SCALAR_EVENT:
                s_check_properties (ctx, line, col, event.data.scalar.anchor,
                                    event.data.scalar.tag);
                node = s_node_new (ctx, S_SCALAR, line, col);
                if (node) {
                    node->length = event.data.scalar.length;
                    node->text = malloc (node->length + 1);
                    if (node->text) {
                        memcpy (node->text, event.data.scalar.value, node->length);
                        node->text [node->length] = 0;
                    }
                    else {
                        s_oom (ctx);
                        s_node_destroy (&node);
                    }
                    if (node)
                        node->plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                }
                ok = node != NULL;
                break;
            case YAML_SEQUENCE_START_EVENT:
            case YAML_MAPPING_START_EVENT:
                if (event.type == YAML_SEQUENCE_START_EVENT)
                    s_check_properties (ctx, line, col, event.data.sequence_start.anchor,
                                        event.data.sequence_start.tag);
                else
                    s_check_properties (ctx, line, col, event.data.mapping_start.anchor,
                                        event.data.mapping_start.tag);
                if (depth == S_MAX_DEPTH) {
                    s_problem (ctx, line, col, "nesting deeper than %d levels is not allowed",
                               S_MAX_DEPTH);
                    ok = false;
                    break;
                }
                node = s_node_new (ctx, event.type == YAML_SEQUENCE_START_EVENT
                                   ? S_SEQUENCE : S_MAPPING, line, col);
                ok = node != NULL;
                opens = true;
                break;
            case YAML_SEQUENCE_END_EVENT:
            case YAML_MAPPING_END_EVENT:
                assert (depth > 0);
                depth--;
                break;
            default:
                break;
        }
        yaml_event_delete (&event);
        if (node) {
            if (depth > 0) {
                if (s_node_append (ctx, stack [depth - 1], node))
                    ok = false;
            }
            else {
                assert (!root);
                root = node;
            }
            if (ok && opens)
                stack [depth++] = node;
        }
    }
    yaml_parser_delete (&parser);
    if (!ok) {
        s_node_destroy (&root);
        return NULL;
    }
    if (!root)                          //  an empty file: an empty mapping, so that the
        root = s_node_new (ctx, S_MAPPING, 1, 1);   //  missing required keys are reported
    return root;
}

//  --------------------------------------------------------------------------
//  Scalars: strict readings of strings, integers, numbers and booleans.

static bool
s_is_null (const s_node_t *node)
{
    if (node->kind != S_SCALAR || !node->plain)
        return false;
    const char *text = node->text;
    return !*text || !strcmp (text, "~") || !strcmp (text, "null") || !strcmp (text, "Null")
        || !strcmp (text, "NULL");
}

//  Present with a value (not absent, not null, not an alias already reported).
static bool
s_given (const s_node_t *node)
{
    return node && node->kind != S_INVALID && !s_is_null (node);
}

static const char *
s_what (const s_node_t *node, char *buf, size_t size)
{
    if (node->kind == S_INVALID)
        return "an alias";
    if (node->kind == S_MAPPING)
        return "a mapping";
    if (node->kind == S_SEQUENCE)
        return "a sequence";
    if (s_is_null (node))
        return "nothing (null)";
    char shown [64];
    snprintf (buf, size, "%s'%s'", node->plain ? "" : "the quoted string ",
              s_show (node->text, shown, sizeof shown));
    return buf;
}

//  A string: any scalar style; not null, not empty, no NUL byte.
static bool
s_get_string (s_ctx_t *ctx, const s_node_t *node, const char *path, const char **text_p)
{
    char what [96];
    if (node->kind == S_INVALID)
        return false;
    if (node->kind != S_SCALAR || s_is_null (node)) {
        s_at (ctx, node, "%s: expected a string, got %s", path, s_what (node, what, sizeof what));
        return false;
    }
    if (strlen (node->text) != node->length) {
        s_at (ctx, node, "%s: must not contain a NUL character", path);
        return false;
    }
    if (node->length == 0) {
        s_at (ctx, node, "%s: must not be empty", path);
        return false;
    }
    *text_p = node->text;
    return true;
}

//  A decimal integer, written plainly: no quotes, no fraction, no exponent, no
//  leading zeros (YAML 1.1 reads 010 as octal), within the range of long long.
static bool
s_get_integer (s_ctx_t *ctx, const s_node_t *node, const char *path, long long *value_p)
{
    char what [96];
    if (node->kind == S_INVALID)
        return false;
    bool good = node->kind == S_SCALAR && node->plain && !s_is_null (node);
    const char *digits = good ? node->text : "";
    if (*digits == '+' || *digits == '-')
        digits++;
    good = good && isdigit ((unsigned char) *digits);
    for (const char *p = digits; good && *p; p++)
        good = isdigit ((unsigned char) *p);
    if (!good) {
        s_at (ctx, node, "%s: expected an integer, got %s", path, s_what (node, what, sizeof what));
        return false;
    }
    if (digits [0] == '0' && digits [1]) {
        s_at (ctx, node, "%s: expected a decimal integer without leading zeros, got %s", path,
              s_what (node, what, sizeof what));
        return false;
    }
    errno = 0;
    long long value = strtoll (node->text, NULL, 10);
    if (errno == ERANGE) {
        s_at (ctx, node, "%s: integer out of range, got %s", path,
              s_what (node, what, sizeof what));
        return false;
    }
    *value_p = value;
    return true;
}

//  A finite decimal number, plain: 0.05, 1, -2.5e3 (no .inf, .nan or hex).
static bool
s_get_number (s_ctx_t *ctx, const s_node_t *node, const char *path, double *value_p)
{
    char what [96];
    if (node->kind == S_INVALID)
        return false;
    bool good = node->kind == S_SCALAR && node->plain && !s_is_null (node)
             && strspn (node->text, "0123456789+-.eE") == node->length;
    char *end = NULL;
    double value = 0;
    if (good) {
        errno = 0;
        value = strtod (node->text, &end);
        good = end == node->text + node->length && errno != ERANGE && isfinite (value);
    }
    if (!good) {
        s_at (ctx, node, "%s: expected a number, got %s", path, s_what (node, what, sizeof what));
        return false;
    }
    *value_p = value;
    return true;
}

//  true or false (YAML 1.2 core spellings); yes/no/on/off are refused on purpose.
static bool
s_get_bool (s_ctx_t *ctx, const s_node_t *node, const char *path, bool *value_p)
{
    char what [96];
    if (node->kind == S_INVALID)
        return false;
    if (node->kind == S_SCALAR && node->plain) {
        const char *text = node->text;
        if (!strcmp (text, "true") || !strcmp (text, "True") || !strcmp (text, "TRUE")) {
            *value_p = true;
            return true;
        }
        if (!strcmp (text, "false") || !strcmp (text, "False") || !strcmp (text, "FALSE")) {
            *value_p = false;
            return true;
        }
    }
    s_at (ctx, node, "%s: expected true or false, got %s", path, s_what (node, what, sizeof what));
    return false;
}

//  --------------------------------------------------------------------------
//  Syntax checks for strings: NULL if TEXT is fine, else what would be right.

static bool
s_has_control (const char *text, bool allow_newline)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if ((*p < 0x20 || *p == 0x7f) && !(allow_newline && (*p == '\n' || *p == '\t')))
            return true;
    return false;
}

//  Names of agents, backends and actions: they appear in logs, metric labels,
//  socket names and the prompt, so they are short, ASCII and lower case.
static const char *
s_check_name (const char *text)
{
    size_t length = strlen (text);
    bool good = length <= 48 && (islower ((unsigned char) text [0])
                                 || isdigit ((unsigned char) text [0]));
    for (size_t i = 1; good && i < length; i++) {
        unsigned char c = (unsigned char) text [i];
        good = islower (c) || isdigit (c) || c == '_' || c == '.' || c == '-';
    }
    return good ? NULL : "a name matching [a-z0-9][a-z0-9_.-]{0,47}";
}

//  Parameter names become JSON keys in proposals and Lua table keys in rules.
static const char *
s_check_param_name (const char *text)
{
    size_t length = strlen (text);
    bool good = length <= 64 && (isalpha ((unsigned char) text [0]) || text [0] == '_');
    for (size_t i = 1; good && i < length; i++)
        good = isalnum ((unsigned char) text [i]) || text [i] == '_';
    return good ? NULL : "a parameter name matching [A-Za-z_][A-Za-z0-9_]{0,63}";
}

static const char *
s_check_topic (const char *text)
{
    size_t length = strlen (text);
    bool good = length <= 249 && strcmp (text, ".") && strcmp (text, "..");
    for (size_t i = 0; good && i < length; i++)
        good = isalnum ((unsigned char) text [i]) || strchr ("._-", text [i]);
    return good ? NULL : "a Kafka topic name (1-249 of [a-zA-Z0-9._-], not '.' or '..')";
}

//  A topic meshd writes to (an action's, a dead-letter topic): never one of Kafka's own
//  (__consumer_offsets, __transaction_state: they start with "__").
static const char *
s_check_write_topic (const char *text)
{
    const char *why = s_check_topic (text);
    if (why)
        return why;
    return strncmp (text, "__", 2) ? NULL : "a topic that is not Kafka-internal (not '__...')";
}

static const char *
s_check_line (const char *text)
{
    return strlen (text) <= 255 && !s_has_control (text, false)
        ? NULL : "at most 255 characters without control characters";
}

static const char *
s_check_text (const char *text)
{
    return strlen (text) <= 1024 && !s_has_control (text, true)
        ? NULL : "at most 1024 characters without control characters other than newline and tab";
}

static const char *
s_check_path (const char *text)
{
    return strlen (text) < 4096 && !s_has_control (text, false)
        ? NULL : "a file path without control characters";
}

//  The base URL of an OpenAI-compatible server.  Credentials never go inline
//  (they would end up in logs and in `ps`); the value is not echoed on error.
//  What every URL meshd sends to must be (a model server's, a webhook's): http or https,
//  printable, with a host and without credentials.  NULL, or what is wrong; *REST_P is
//  what follows the scheme.
static const char *
s_check_url_common (const char *text, const char **rest_p)
{
    const char *rest = !strncmp (text, "http://", 7) ? text + 7
                     : !strncmp (text, "https://", 8) ? text + 8 : NULL;
    if (!rest)
        return "an http:// or https:// URL";
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return "a URL without spaces or control characters";
    size_t authority = strcspn (rest, "/?#");
    if (authority == 0)
        return "a URL with a host, e.g. http://127.0.0.1:8080";
    if (memchr (rest, '@', authority))
        return "a URL without credentials (secrets go in files the config names)";
    *rest_p = rest;
    return NULL;
}

static const char *
s_check_url (const char *text)
{
    const char *rest = NULL;
    if (strncmp (text, "http://", 7) && strncmp (text, "https://", 8))
        return "an http:// or https:// base URL, e.g. http://127.0.0.1:8080";
    const char *why = s_check_url_common (text, &rest);
    if (why && strstr (why, "credentials"))
        return "a URL without credentials (put a bearer token in the file named by api_key_file)";
    if (why)
        return why;
    if (strpbrk (rest, "?#"))
        return "a base URL without query or fragment";
    const char *tail = rest + strcspn (rest, "/?#");
    size_t length = strlen (tail);
    while (length && tail [length - 1] == '/')
        length--;
    if ((length >= 3 && !strncmp (tail + length - 3, "/v1", 3))
    ||  (length >= 17 && !strncmp (tail + length - 17, "/chat/completions", 17)))
        return "the server's base URL without /v1 (meshd appends /v1/chat/completions)";
    return NULL;
}

//  --------------------------------------------------------------------------
//  Files the config names, and the config itself: StrictModes, as sshd has it.
//  Whoever may write a rule file, the config or the agent binary decides what
//  meshd does, so each must be owned by root or meshd's user and writable by
//  no one else; so must the directory that holds it (else it can be replaced),
//  after following symlinks, and the directory holding the symlink.  Directories
//  further up must be owned the same way and not writable by others, except a
//  sticky one (such as /tmp), in which no one else may rename what is ours.

static bool
s_trusted_owner (uid_t uid)
{
    return uid == 0 || uid == geteuid ();
}

//  NULL if DIR and every directory above it can be trusted (DIR itself not even
//  when sticky), else what is wrong in WHY.
static const char *
s_check_dirs (const char *dir, char *why, size_t size)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s", dir);
    bool first = true;
    while (true) {
        struct stat st;
        if (stat (path, &st) != 0) {
            snprintf (why, size, "cannot examine directory %s: %s", path, strerror (errno));
            return why;
        }
        if (!s_trusted_owner (st.st_uid)) {
            snprintf (why, size, "directory %s is owned by uid %u, neither root nor meshd's "
                      "user (uid %u); chown it, or move the file", path, (unsigned) st.st_uid,
                      (unsigned) geteuid ());
            return why;
        }
        if ((st.st_mode & 022) && (first || !(st.st_mode & S_ISVTX))) {
            snprintf (why, size, "directory %s is writable by %s (mode %04o), so the file in it "
                      "could be replaced; run chmod go-w %s", path,
                      (st.st_mode & 002) ? "others" : "its group",
                      (unsigned) (st.st_mode & 07777), path);
            return why;
        }
        first = false;
        if (!strcmp (path, "/"))
            return NULL;
        char *slash = strrchr (path, '/');
        if (slash == path)
            slash [1] = 0;
        else
            *slash = 0;
    }
}

const char *
mesh_config_check_trust (const char *path, char *why, size_t size)
{
    assert (path);
    char real [PATH_MAX], given [PATH_MAX];
    if (!realpath (path, real)) {
        snprintf (why, size, "cannot resolve %s: %s", path, strerror (errno));
        return why;
    }
    struct stat st;
    if (stat (real, &st) != 0) {
        snprintf (why, size, "cannot examine %s: %s", real, strerror (errno));
        return why;
    }
    const char *shown = strcmp (real, path) ? real : path;
    if (!S_ISREG (st.st_mode)) {
        snprintf (why, size, "%s is not a regular file", shown);
        return why;
    }
    if (!s_trusted_owner (st.st_uid)) {
        snprintf (why, size, "%s is owned by uid %u, neither root nor meshd's user (uid %u); "
                  "chown it", shown, (unsigned) st.st_uid, (unsigned) geteuid ());
        return why;
    }
    if (st.st_mode & 022) {
        snprintf (why, size, "%s is writable by %s (mode %04o); run chmod go-w %s", shown,
                  (st.st_mode & 002) ? "others" : "its group", (unsigned) (st.st_mode & 07777),
                  shown);
        return why;
    }
    //  The directory of the target, then (a symlink) the one that holds the link.
    char *slash = strrchr (real, '/');
    if (slash == real)
        slash [1] = 0;
    else
        *slash = 0;
    if (s_check_dirs (real, why, size))
        return why;
    snprintf (given, sizeof given, "%s", path);
    char *parent = dirname (given);
    char resolved [PATH_MAX];
    if (!realpath (parent, resolved)) {
        snprintf (why, size, "cannot resolve %s: %s", parent, strerror (errno));
        return why;
    }
    if (strcmp (resolved, real) && s_check_dirs (resolved, why, size))
        return why;
    return NULL;
}

//  --------------------------------------------------------------------------
//  Pass 2: the generic walker and the tables it reads.

typedef enum {
    F_STRING,                           //  char *
    F_PATH,                             //  char *, resolved against the config's directory
    F_ENUM,                             //  an enum (int-sized), the index of the value in choices
    F_INT,                              //  int
    F_LONG,                             //  long
    F_SIZE,                             //  size_t
    F_DOUBLE,                           //  double
    F_BOOL,                             //  bool
    F_LIST,                             //  char ** and size_t count; paths may keep positions
    F_SECTION,                          //  a nested mapping whose fields use the same base
    F_CALL,                             //  a hand-written handler
} s_type_t;

typedef struct _s_field_t s_field_t;
typedef void (s_handler_fn) (s_ctx_t *ctx, s_node_t *value, const char *path, void *base);

struct _s_field_t {
    const char *key;
    s_type_t type;
    size_t offset;                      //  of the value in base
    bool required;
    double lo, hi;                      //  numbers: inclusive bounds
    bool lo_open;                       //  numbers: lo itself is excluded
    bool unbounded;                     //  numbers: no upper bound; only for values that are
                                        //  not limits (a param's min and max): every limit,
                                        //  budget and size has one (s_walk asserts it)
    const char *const *choices;         //  F_STRING, F_ENUM: the allowed values (NULL-terminated)
    const char *(*check) (const char *);  //  F_STRING, F_PATH, F_LIST items: syntax
    bool no_echo;                       //  never repeat the value in a message
    size_t count_offset;                //  F_LIST: the size_t count
    size_t pos_offset;                  //  F_LIST of paths: the mesh_config_pos_t array
    bool is_path;                       //  F_LIST: items are paths (resolved, positioned)
    bool unique;                        //  F_LIST: no value twice
    size_t min_items;                   //  F_LIST
    const s_field_t *sub;               //  F_SECTION
    s_handler_fn *handler;              //  F_CALL
};

static char *
s_resolve (s_ctx_t *ctx, const char *value)
{
    if (value [0] == '/')
        return s_strdup (ctx, value);
    char *path = NULL;
    if (asprintf (&path, "%s/%s", ctx->dir, value) < 0) {
        s_oom (ctx);
        return NULL;
    }
    return path;
}

static void
s_strv_free (char ***list_p, size_t count)
{
    char **list = *list_p;
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        free (list [i]);
    free (list);
    *list_p = NULL;
}

static int
s_choice (const char *const *choices, const char *text)
{
    for (int i = 0; choices [i]; i++)
        if (!strcmp (choices [i], text))
            return i;
    return -1;
}

static void
s_choices_text (const char *const *choices, char *buf, size_t size)
{
    buf [0] = 0;
    for (int i = 0; choices [i]; i++) {
        size_t used = strlen (buf);
        snprintf (buf + used, size - used, "%s%s", i ? ", " : "", choices [i]);
    }
}

static void
s_field_keys (const s_field_t *fields, char *buf, size_t size)
{
    buf [0] = 0;
    for (int i = 0; fields [i].key; i++) {
        size_t used = strlen (buf);
        snprintf (buf + used, size - used, "%s%s", i ? ", " : "", fields [i].key);
    }
}

static const char *
s_location (const char *path, char *buf, size_t size)
{
    if (!*path)
        return "at top level";
    snprintf (buf, size, "in %s", path);
    return buf;
}

//  For each of N nodes (NULL entries skipped), the index of an earlier node with
//  the same text, or SIZE_MAX.  Sorting keeps this O(n log n) however large the
//  file.  NULL if out of memory.
static int
s_order_cmp (const void *a, const void *b, void *arg)
{
    s_node_t **nodes = arg;
    size_t x = *(const size_t *) a, y = *(const size_t *) b;
    int cmp = strcmp (nodes [x]->text, nodes [y]->text);
    return cmp ? cmp : (x < y ? -1 : (x > y));
}

static size_t *
s_duplicates (s_ctx_t *ctx, s_node_t **nodes, size_t count)
{
    size_t *first = s_calloc (ctx, count, sizeof *first);
    size_t *order = s_calloc (ctx, count, sizeof *order);
    if (!first || !order) {
        free (first);
        free (order);
        return NULL;
    }
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        first [i] = SIZE_MAX;
        if (nodes [i])
            order [used++] = i;
    }
    qsort_r (order, used, sizeof *order, s_order_cmp, nodes);
    for (size_t i = 1; i < used; i++) {
        size_t earlier = order [i - 1];
        if (!strcmp (nodes [order [i]]->text, nodes [earlier]->text))
            first [order [i]] = first [earlier] == SIZE_MAX ? earlier : first [earlier];
    }
    free (order);
    return first;
}

static void
s_range_text (const s_field_t *field, bool integral, char *buf, size_t size)
{
    const char *format = integral ? "%.0f" : "%g";
    char lo [32], hi [32];
    snprintf (lo, sizeof lo, format, field->lo);
    snprintf (hi, sizeof hi, format, field->hi);
    if (field->unbounded)
        snprintf (buf, size, "%s %s", field->lo_open ? ">" : ">=", lo);
    else
        snprintf (buf, size, "in %c%s,%s]", field->lo_open ? '(' : '[', lo, hi);
}

static bool
s_in_range (s_ctx_t *ctx, const s_field_t *field, const s_node_t *node, const char *path,
            double value, bool integral)
{
    bool good = field->lo_open ? value > field->lo : value >= field->lo;
    if (!field->unbounded)
        good = good && value <= field->hi;
    if (!good) {
        char range [96], shown [64];
        s_range_text (field, integral, range, sizeof range);
        s_at (ctx, node, "%s: must be %s, got %s", path, range,
              s_show (node->text, shown, sizeof shown));
    }
    return good;
}

static void s_walk (s_ctx_t *ctx, s_node_t *map, const char *path, const s_field_t *fields,
                    void *base, s_node_t **seen);

static void
s_list (s_ctx_t *ctx, const s_field_t *field, s_node_t *node, const char *path, void *base)
{
    char ***list_p = (char ***) ((char *) base + field->offset);
    size_t *count_p = (size_t *) ((char *) base + field->count_offset);
    mesh_config_pos_t **pos_p = field->is_path
        ? (mesh_config_pos_t **) ((char *) base + field->pos_offset) : NULL;
    char what [96], shown [64], item_path [S_PATH_MAX];

    s_strv_free (list_p, *count_p);
    *count_p = 0;
    if (pos_p) {
        free (*pos_p);
        *pos_p = NULL;
    }
    size_t count = 0;
    if (!s_is_null (node)) {
        if (node->kind != S_SEQUENCE) {
            s_at (ctx, node, "%s: expected a sequence such as [a, b], got %s", path,
                  s_what (node, what, sizeof what));
            return;
        }
        count = node->count;
    }
    if (count < field->min_items) {
        s_at (ctx, node, "%s: must list at least %zu entr%s", path, field->min_items,
              field->min_items == 1 ? "y" : "ies");
        return;
    }
    //  Keep the items that are good strings, then drop repeats.
    s_node_t **good = s_calloc (ctx, count, sizeof *good);
    char **list = s_calloc (ctx, count, sizeof *list);
    mesh_config_pos_t *pos = pos_p ? s_calloc (ctx, count, sizeof *pos) : NULL;
    size_t *first = NULL;
    if (!good || !list || (pos_p && !pos))
        goto done;
    for (size_t i = 0; i < count; i++) {
        s_node_t *item = node->kids [i];
        const char *text;
        s_index (item_path, path, i);
        if (!s_get_string (ctx, item, item_path, &text))
            continue;
        const char *why = field->check ? field->check (text) : NULL;
        if (why)
            s_at (ctx, item, "%s: expected %s, got '%s'", item_path, why,
                  s_show (text, shown, sizeof shown));
        else
            good [i] = item;
    }
    if (field->unique && !(first = s_duplicates (ctx, good, count)))
        goto done;
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        if (!good [i])
            continue;
        if (first && first [i] != SIZE_MAX) {
            s_index (item_path, path, i);
            s_at (ctx, good [i], "%s: '%s' is listed twice (first at %d:%d)", item_path,
                  s_show (good [i]->text, shown, sizeof shown), node->kids [first [i]]->line,
                  node->kids [first [i]]->col);
            continue;
        }
        list [used] = field->is_path ? s_resolve (ctx, good [i]->text)
                                     : s_strdup (ctx, good [i]->text);
        if (!list [used])
            continue;
        //  Who may write a rule file is checked here; one that is not there at all is
        //  left to the rule check (meshd --check-config, start, reload), which says so.
        char why [PATH_MAX + 256];
        struct stat st;
        if (field->is_path && !ctx->snapshot
        &&  !(stat (list [used], &st) != 0 && errno == ENOENT)
        &&  mesh_config_check_trust (list [used], why, sizeof why)) {
            s_index (item_path, path, i);
            s_at (ctx, good [i], "%s: %s", item_path, why);
            free (list [used]);
            continue;
        }
        if (pos)
            pos [used] = (mesh_config_pos_t) { good [i]->line, good [i]->col };
        used++;
    }
    *list_p = list;
    *count_p = used;
    if (pos_p)
        *pos_p = pos;
    list = NULL;
    pos = NULL;
done:
    free (good);
    free (list);
    free (pos);
    free (first);
}

//  One known key's value into its place in BASE.
static void
s_field (s_ctx_t *ctx, const s_field_t *field, s_node_t *node, const char *path, void *base)
{
    void *at = (char *) base + field->offset;
    char shown [64], choices [256];
    const char *text;
    long long integer;
    double number;

    switch (field->type) {
        case F_STRING:
        case F_PATH:
            if (!s_get_string (ctx, node, path, &text))
                return;
            if (field->choices && s_choice (field->choices, text) < 0) {
                s_choices_text (field->choices, choices, sizeof choices);
                s_at (ctx, node, "%s: must be one of: %s; got '%s'", path, choices,
                      s_show (text, shown, sizeof shown));
                return;
            }
            const char *why = field->check ? field->check (text) : NULL;
            if (why) {
                if (field->no_echo)
                    s_at (ctx, node, "%s: expected %s", path, why);
                else
                    s_at (ctx, node, "%s: expected %s, got '%s'", path, why,
                          s_show (text, shown, sizeof shown));
                return;
            }
            char *copy = field->type == F_PATH ? s_resolve (ctx, text) : s_strdup (ctx, text);
            free (*(char **) at);
            *(char **) at = copy;
            return;
        case F_ENUM:
            if (!s_get_string (ctx, node, path, &text))
                return;
            int choice = s_choice (field->choices, text);
            if (choice < 0) {
                s_choices_text (field->choices, choices, sizeof choices);
                s_at (ctx, node, "%s: must be one of: %s; got '%s'", path, choices,
                      s_show (text, shown, sizeof shown));
                return;
            }
            *(int *) at = choice;
            return;
        case F_INT:
        case F_LONG:
        case F_SIZE:
            if (!s_get_integer (ctx, node, path, &integer)
            ||  !s_in_range (ctx, field, node, path, (double) integer, true))
                return;
            if (field->type == F_INT) {
                if (integer < INT_MIN || integer > INT_MAX) {
                    s_at (ctx, node, "%s: integer out of range, got %s", path, node->text);
                    return;
                }
                *(int *) at = (int) integer;
            }
            else
            if (field->type == F_LONG)
                *(long *) at = (long) integer;
            else
                *(size_t *) at = (size_t) integer;     //  lo >= 0 for every F_SIZE field
            return;
        case F_DOUBLE:
            if (s_get_number (ctx, node, path, &number)
            &&  s_in_range (ctx, field, node, path, number, false))
                *(double *) at = number;
            return;
        case F_BOOL:
            s_get_bool (ctx, node, path, (bool *) at);
            return;
        case F_LIST:
            s_list (ctx, field, node, path, base);
            return;
        case F_SECTION:
            s_walk (ctx, node, path, field->sub, base, NULL);
            return;
        case F_CALL:
            field->handler (ctx, node, path, base);
            return;
    }
}

//  Walk MAP (a mapping, or null for an empty one) against FIELDS, filling BASE.
//  If SEEN is given, seen[i] is set to the value node of fields[i] (NULL when
//  absent), for checks that involve more than one key.
static void
s_walk (s_ctx_t *ctx, s_node_t *map, const char *path, const s_field_t *fields, void *base,
        s_node_t **seen)
{
    size_t field_count = 0;
    while (fields [field_count].key) {
        //  The one place bounds live: every number in a table has an upper one.
        const s_field_t *field = &fields [field_count++];
        assert (field->type < F_INT || field->type > F_DOUBLE || field->unbounded
                || field->hi >= field->lo);
        assert (field->type < F_INT || field->type > F_DOUBLE || field->unbounded
                || field->hi > 0);
    }
    assert (field_count <= S_MAX_FIELDS);
    s_node_t *local [S_MAX_FIELDS], *keys [S_MAX_FIELDS];
    if (!seen)
        seen = local;
    memset (seen, 0, field_count * sizeof *seen);

    char where [S_PATH_MAX + 8], what [96], shown [64], sub [S_PATH_MAX];
    if (map->kind == S_INVALID)
        return;
    if (map->kind != S_MAPPING && !s_is_null (map)) {
        s_at (ctx, map, "%s: expected a mapping (key: value lines), got %s",
              *path ? path : "top level",
              s_what (map, what, sizeof what));
        return;
    }
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        s_node_t *key = map->kids [i], *value = map->kids [i + 1];
        if (key->kind == S_INVALID)
            continue;
        if (key->kind != S_SCALAR || strlen (key->text) != key->length) {
            s_at (ctx, key, "keys must be plain strings %s",
                  s_location (path, where, sizeof where));
            continue;
        }
        size_t index = 0;
        while (index < field_count && strcmp (fields [index].key, key->text))
            index++;
        if (index == field_count) {
            char expected [512];
            s_field_keys (fields, expected, sizeof expected);
            static const char *const secrets [] = { "api_key", "key", "token", "secret",
                                                    "password", "bearer", NULL };
            bool secret = s_choice (secrets, key->text) >= 0;
            s_at (ctx, key, "unknown key '%s' %s (expected one of: %s)%s",
                  s_show (key->text, shown, sizeof shown), s_location (path, where, sizeof where),
                  expected, secret ? "; secrets are never written inline: put them in a file "
                  "and name the file (api_key_file)" : "");
            continue;
        }
        if (seen [index]) {
            s_at (ctx, key, "duplicate key '%s' %s (first at %d:%d)",
                  s_show (key->text, shown, sizeof shown),
                  s_location (path, where, sizeof where), keys [index]->line, keys [index]->col);
            continue;
        }
        seen [index] = value;
        keys [index] = key;
        if (value->kind == S_INVALID)
            continue;
        const s_field_t *field = &fields [index];
        s_join (sub, path, field->key);
        //  A null value means "the default" for a scalar key; sections, lists and
        //  handlers read it as empty and say what they miss.
        if (s_is_null (value) && field->type != F_SECTION && field->type != F_LIST
        &&  field->type != F_CALL) {
            if (field->required)
                s_at (ctx, value, "%s: a value is required", sub);
            continue;
        }
        s_field (ctx, field, value, sub, base);
    }
    for (size_t i = 0; i < field_count; i++)
        if (fields [i].required && !seen [i]) {
            if (*path)
                s_at (ctx, map, "%s: missing required key '%s'", path, fields [i].key);
            else
                s_at (ctx, map, "missing required top-level key '%s'", fields [i].key);
        }
}

//  The entries of a mapping whose keys are names the operator chose (backends,
//  actions, params): checked for type, syntax and repeats.  Returns how many are
//  good, with their key and value nodes in *KEYS_P, *VALUES_P (caller frees the
//  arrays, not the nodes).
static size_t
s_entries (s_ctx_t *ctx, s_node_t *map, const char *path, const char *(*check) (const char *),
           s_node_t ***keys_p, s_node_t ***values_p)
{
    char what [96], shown [64];
    *keys_p = *values_p = NULL;
    if (map->kind == S_INVALID || s_is_null (map))
        return 0;
    if (map->kind != S_MAPPING) {
        s_at (ctx, map, "%s: expected a mapping of names to entries, got %s", path,
              s_what (map, what, sizeof what));
        return 0;
    }
    size_t pairs = map->count / 2;
    s_node_t **keys = s_calloc (ctx, pairs, sizeof *keys);
    s_node_t **values = s_calloc (ctx, pairs, sizeof *values);
    size_t *first = NULL;
    size_t used = 0;
    if (!keys || !values)
        goto done;
    for (size_t i = 0; i < pairs; i++) {
        s_node_t *key = map->kids [2 * i];
        if (key->kind == S_INVALID)
            continue;
        if (key->kind != S_SCALAR || s_is_null (key) || strlen (key->text) != key->length) {
            s_at (ctx, key, "%s: keys must be names, got %s", path,
                  s_what (key, what, sizeof what));
            continue;
        }
        const char *why = check (key->text);
        if (why) {
            s_at (ctx, key, "%s: expected %s, got '%s'", path, why,
                  s_show (key->text, shown, sizeof shown));
            continue;
        }
        keys [i] = key;
    }
    if (!(first = s_duplicates (ctx, keys, pairs)))
        goto done;
    for (size_t i = 0; i < pairs; i++) {
        if (!keys [i])
            continue;
        if (first [i] != SIZE_MAX) {
            s_at (ctx, keys [i], "duplicate key '%s' in %s (first at %d:%d)", keys [i]->text, path,
                  keys [first [i]]->line, keys [first [i]]->col);
            continue;
        }
        keys [used] = keys [i];
        values [used++] = map->kids [2 * i + 1];
    }
done:
    free (first);
    if (!used) {
        free (keys);
        free (values);
        return 0;
    }
    *keys_p = keys;
    *values_p = values;
    return used;
}

//  The value node of KEY in MAP, or NULL.
static s_node_t *
s_find (s_node_t *map, const char *key)
{
    if (!map || map->kind != S_MAPPING)
        return NULL;
    for (size_t i = 0; i + 1 < map->count; i += 2)
        if (map->kids [i]->kind == S_SCALAR && !strcmp (map->kids [i]->text, key))
            return map->kids [i + 1];
    return NULL;
}

//  The first of two nodes that is given, else FALLBACK: where to report a
//  problem that involves two keys.
static s_node_t *
s_either (s_node_t *one, s_node_t *other, s_node_t *fallback)
{
    return s_given (one) ? one : s_given (other) ? other : fallback;
}

#define S_NUM(k, T, m, ty, l, h) \
    { .key = (k), .type = (ty), .offset = offsetof (T, m), .lo = (l), .hi = (h) }
#define S_STR(k, T, m, chk) \
    { .key = (k), .type = F_STRING, .offset = offsetof (T, m), .check = (chk) }
#define S_PATHF(k, T, m) \
    { .key = (k), .type = F_PATH, .offset = offsetof (T, m), .check = s_check_path }

//  --------------------------------------------------------------------------
//  budget: one token budget (the daemon's, a backend's, an action's, an agent's).

static const char *const s_window_kinds [] = { "rolling", "day", NULL };
enum { BU_TOKENS, BU_WINDOW, BU_WINDOW_S, BU_TZ, BU_RESERVE };
static const s_field_t s_budget_fields [] = {
    [BU_TOKENS] = { .key = "tokens", .type = F_LONG, .required = true,
                    .offset = offsetof (mesh_budget_config_t, tokens), .lo = 1, .hi = 1e12 },
    [BU_WINDOW] = { .key = "window", .type = F_ENUM, .choices = s_window_kinds,
                    .offset = offsetof (mesh_budget_config_t, window) },
    [BU_WINDOW_S] = S_NUM ("window_s", mesh_budget_config_t, window_s, F_INT, 1, 31 * 86400),
    [BU_TZ] = S_STR ("time_zone", mesh_budget_config_t, time_zone, NULL),
    [BU_RESERVE] = S_NUM ("reserve", mesh_budget_config_t, reserve, F_LONG, 0, 1e12),
    { NULL }
};

static void
s_budget_at (s_ctx_t *ctx, s_node_t *node, const char *path, mesh_budget_config_t *budget)
{
    s_node_t *seen [S_MAX_FIELDS];
    budget->window = MESH_WINDOW_ROLLING;
    budget->window_s = 3600;
    s_walk (ctx, node, path, s_budget_fields, budget, seen);
    bool day = budget->window == MESH_WINDOW_DAY;
    if (day && seen [BU_WINDOW_S])
        s_at (ctx, seen [BU_WINDOW_S], "%s.window_s: only for window rolling (this one is the "
              "calendar day; its length is the day's)", path);
    if (!day && seen [BU_TZ])
        s_at (ctx, seen [BU_TZ], "%s.time_zone: only for window day (a rolling window has no "
              "time zone)", path);
    if (day && !budget->time_zone)
        budget->time_zone = s_strdup (ctx, "UTC");
    if (day && budget->time_zone && s_given (seen [BU_TZ])) {
        char why [600];
        mesh_tz_t *tz = mesh_tz_load (budget->time_zone, why, sizeof why);
        if (!tz)
            s_at (ctx, seen [BU_TZ], "%s.time_zone: %s", path, why);
        mesh_tz_destroy (&tz);
    }
    if (s_given (seen [BU_TOKENS]) && budget->reserve >= budget->tokens)
        s_at (ctx, seen [BU_RESERVE] ? seen [BU_RESERVE] : node,
              "%s.reserve: must be below tokens (%ld), got %ld, or only high-priority "
              "incidents could ever spend", path, budget->tokens, budget->reserve);
}

static void
s_root_budget (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_budget_at (ctx, node, path, &((mesh_config_t *) base)->budget);
}

static void
s_backend_budget (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_budget_at (ctx, node, path, &((mesh_backend_config_t *) base)->budget);
}

static void
s_action_budget (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_budget_at (ctx, node, path, &((mesh_action_spec_t *) base)->budget);
}

static void
s_reason_budget (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_budget_at (ctx, node, path, &((mesh_agent_config_t *) base)->reason.budget);
}

static void
s_free_budget (mesh_budget_config_t *budget)
{
    free (budget->time_zone);
    budget->time_zone = NULL;
}

//  --------------------------------------------------------------------------
//  daemon:

static const s_field_t s_restart_fields [] = {
    S_NUM ("backoff_initial_ms", mesh_config_t, backoff_initial_ms, F_INT, 1, 3600000),
    S_NUM ("backoff_max_ms", mesh_config_t, backoff_max_ms, F_INT, 1, 86400000),
    S_NUM ("healthy_after_s", mesh_config_t, healthy_after_s, F_INT, 1, 86400),
    S_NUM ("intensity", mesh_config_t, restart_intensity, F_INT, 0, 1000),
    S_NUM ("period_s", mesh_config_t, restart_period_s, F_INT, 1, 86400),
    S_NUM ("quarantine_after", mesh_config_t, quarantine_after, F_INT, 1, 100),
    { NULL }
};

//  daemon.agent_binary: what meshd executes for every agent, so an absolute path to a
//  file no one else may change (mesh_config_check_trust).
static void
s_agent_binary (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    const char *text;
    char shown [64], why [PATH_MAX + 256];
    if (s_is_null (node) || !s_get_string (ctx, node, path, &text))
        return;                         //  null: the default, beside meshd
    if (text [0] != '/' || s_check_path (text)) {
        s_at (ctx, node, "%s: expected an absolute path (/usr/libexec/meshd/mesh-agent), got "
              "'%s'", path, s_show (text, shown, sizeof shown));
        return;
    }
    if (!ctx->snapshot && mesh_config_check_trust (text, why, sizeof why)) {
        s_at (ctx, node, "%s: %s", path, why);
        return;
    }
    free (cfg->agent_binary);
    cfg->agent_binary = s_strdup (ctx, text);
}

static const char *const s_token_sync_kinds [] = { "background", "each_grant", NULL };
enum { D_RUNTIME, D_STATE, D_LOG, D_BINARY, D_HEARTBEAT, D_LIVENESS, D_DRAIN, D_RESTART,
       D_TOKEN_SYNC, D_OPERATORS };
static const s_field_t s_daemon_fields [] = {
    [D_RUNTIME] = S_PATHF ("runtime_dir", mesh_config_t, runtime_dir),
    [D_STATE] = S_PATHF ("state_dir", mesh_config_t, state_dir),
    [D_LOG] = S_PATHF ("decision_log", mesh_config_t, decision_log),
    [D_BINARY] = { .key = "agent_binary", .type = F_CALL, .handler = s_agent_binary },
    [D_HEARTBEAT] = S_NUM ("heartbeat_ms", mesh_config_t, heartbeat_ms, F_INT, 10, 60000),
    [D_LIVENESS] = S_NUM ("liveness_timeout_ms", mesh_config_t, liveness_timeout_ms, F_INT,
                          20, 3600000),
    [D_DRAIN] = S_NUM ("drain_timeout_ms", mesh_config_t, drain_timeout_ms, F_INT, 0, 3600000),
    [D_RESTART] = { .key = "restart", .type = F_SECTION, .sub = s_restart_fields },
    [D_TOKEN_SYNC] = { .key = "token_sync", .type = F_ENUM, .choices = s_token_sync_kinds,
                       .offset = offsetof (mesh_config_t, token_sync) },
    [D_OPERATORS] = S_STR ("operator_group", mesh_config_t, operator_group, s_check_name),
    { NULL }
};

static void
s_daemon (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    s_node_t *seen [S_MAX_FIELDS];
    s_walk (ctx, node, path, s_daemon_fields, cfg, seen);
    if (cfg->liveness_timeout_ms <= cfg->heartbeat_ms)
        s_at (ctx, s_either (seen [D_LIVENESS], seen [D_HEARTBEAT], node),
              "%s.liveness_timeout_ms: must be greater than heartbeat_ms (%d), got %d, or every "
              "agent would be killed between two heartbeats", path, cfg->heartbeat_ms,
              cfg->liveness_timeout_ms);
    s_node_t *restart = seen [D_RESTART];
    if (cfg->backoff_max_ms < cfg->backoff_initial_ms)
        s_at (ctx, s_either (s_find (restart, "backoff_max_ms"),
                             s_find (restart, "backoff_initial_ms"), node),
              "%s.restart.backoff_max_ms: must be at least backoff_initial_ms (%d), got %d",
              path, cfg->backoff_initial_ms, cfg->backoff_max_ms);
}

//  --------------------------------------------------------------------------
//  kafka:

//  A bootstrap list: host:port[,host:port...], no spaces or control characters.
static const char *
s_check_broker_list (const char *text)
{
    const char *start = text;
    while (true) {
        size_t length = strcspn (start, ",");
        const char *colon = NULL;
        bool good = length > 0;
        for (size_t i = 0; good && i < length; i++) {
            unsigned char c = (unsigned char) start [i];
            good = c > ' ' && c != 0x7f;
            if (c == ':')
                colon = start + i;
        }
        long port = 0;
        if (good && colon && colon > start && colon + 1 < start + length) {
            char *end;
            port = strtol (colon + 1, &end, 10);
            good = isdigit ((unsigned char) colon [1]) && end == start + length
                && port >= 1 && port <= 65535;
        }
        else
            good = false;
        if (!good)
            return "\"host:port[,host:port...]\"";
        if (!start [length])
            return NULL;
        start += length + 1;
    }
}

static void
s_brokers (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    const char *text;
    char shown [64];
    if (s_is_null (node)) {
        s_at (ctx, node, "%s: a value is required: \"embedded\" or \"host:port[,host:port...]\"",
              path);
        return;
    }
    if (!s_get_string (ctx, node, path, &text))
        return;
    cfg->embedded = !strcmp (text, "embedded");
    if (!cfg->embedded && s_check_broker_list (text)) {
        s_at (ctx, node, "%s: expected \"embedded\" or \"host:port[,host:port...]\", "
              "got '%s'", path, s_show (text, shown, sizeof shown));
        return;
    }
    free (cfg->brokers);
    cfg->brokers = s_strdup (ctx, text);
}

//  kafka.security and kafka.properties (common/kafka_conf.c turns them into librdkafka
//  settings).  Files are checked now, so that a missing key or an unreadable password is a
//  config error with its position, not a client that fails at start; secrets are never
//  accepted inline, and a secret file others may read is refused.

typedef enum {
    S_FILE_PUBLIC,                      //  a CA bundle or certificate: readable is enough
    S_FILE_KEY,                         //  a private key: not readable by others
    S_FILE_SECRET,                      //  a password: not readable by others, one short line
} s_file_kind_t;

static const char *
s_check_credential (const char *text)
{
    size_t length = strlen (text);
    bool good = length <= 255 && strcmp (text, ".") && strcmp (text, "..");
    for (size_t i = 0; good && i < length; i++)
        good = isalnum ((unsigned char) text [i]) || strchr ("._-@:", text [i]);
    return good ? NULL : "a systemd credential name (1-255 of [A-Za-z0-9._@:-], not '.' or '..')";
}

//  A file named by PATH or {credential: NAME} ($CREDENTIALS_DIRECTORY/NAME, as systemd's
//  LoadCredential= provides it), checked for KIND and stored (resolved) in *OUT.
static void
s_kafka_file (s_ctx_t *ctx, s_node_t *node, const char *path, char **out, s_file_kind_t kind)
{
    char what [96], shown [64];
    const char *text;
    char *resolved = NULL;
    if (node->kind == S_MAPPING) {
        s_node_t *name = s_find (node, "credential");
        if (node->count != 2 || !name) {
            s_at (ctx, node, "%s: expected a file path or {credential: NAME}", path);
            return;
        }
        char sub [S_PATH_MAX];
        s_join (sub, path, "credential");
        if (!s_get_string (ctx, name, sub, &text))
            return;
        const char *why = s_check_credential (text);
        if (why) {
            s_at (ctx, name, "%s: expected %s, got '%s'", sub, why,
                  s_show (text, shown, sizeof shown));
            return;
        }
        const char *dir = getenv ("CREDENTIALS_DIRECTORY");
        if (!dir || !*dir) {
            s_at (ctx, name, "%s: $CREDENTIALS_DIRECTORY is not set, so credential '%s' "
                  "cannot be found (systemd sets it for LoadCredential=; outside systemd name "
                  "a file instead)", sub, s_show (text, shown, sizeof shown));
            return;
        }
        if (asprintf (&resolved, "%s/%s", dir, text) < 0) {
            s_oom (ctx);
            return;
        }
        node = name;
    }
    else {
        if (!s_get_string (ctx, node, path, &text))
            return;
        if (node->kind != S_SCALAR) {
            s_at (ctx, node, "%s: expected a file path or {credential: NAME}, got %s", path,
                  s_what (node, what, sizeof what));
            return;
        }
        const char *why = s_check_path (text);
        if (why) {
            s_at (ctx, node, "%s: expected %s", path, why);
            return;
        }
        if (!(resolved = s_resolve (ctx, text)))
            return;
    }
    //  The file itself: there, readable, a regular file, and for keys and secrets private.
    struct stat st;
    int fd = open (resolved, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || fstat (fd, &st) != 0) {
        s_at (ctx, node, "%s: cannot read %s: %s", path, resolved, strerror (errno));
        if (fd >= 0)
            close (fd);
        free (resolved);
        return;
    }
    close (fd);
    const char *problem = NULL;
    if (!S_ISREG (st.st_mode))
        problem = "is not a regular file";
    else
    if (st.st_size == 0)
        problem = "is empty";
    else
    if (kind != S_FILE_PUBLIC && (st.st_mode & S_IROTH))
        problem = "is readable by every user; make it private (chmod o-r), or use a systemd "
                  "credential";
    else
    if (kind == S_FILE_SECRET && st.st_size > MESH_KAFKA_SECRET_MAX)
        problem = "is larger than 4096 bytes; a secret file holds one line";
    else
    if (st.st_size > S_MAX_BYTES)
        problem = "is larger than 1 MiB";
    if (problem) {
        s_at (ctx, node, "%s: %s %s", path, resolved, problem);
        free (resolved);
        return;
    }
    free (*out);
    *out = resolved;
}

#define S_FILE_HANDLER(name, member, kind)                                                   \
    static void name (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)           \
    {                                                                                        \
        s_kafka_file (ctx, node, path, &((mesh_kafka_security_t *) base)->member, kind);     \
    }
S_FILE_HANDLER (s_ca_file, ca_file, S_FILE_PUBLIC)
S_FILE_HANDLER (s_cert_file, cert_file, S_FILE_PUBLIC)
S_FILE_HANDLER (s_key_file, key_file, S_FILE_KEY)
S_FILE_HANDLER (s_key_password_file, key_password_file, S_FILE_SECRET)
S_FILE_HANDLER (s_password_file, password_file, S_FILE_SECRET)
S_FILE_HANDLER (s_client_secret_file, client_secret_file, S_FILE_SECRET)

//  `password:`, `key_password:`, `client_secret:` written inline: refused, whatever the value.
static void
s_inline_secret (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    const char *key = strrchr (path, '.') ? strrchr (path, '.') + 1 : path;
    s_at (ctx, node, "%s: secrets are never written in the config; put it in a file readable "
          "only by meshd and name it with %s_file: PATH, or %s_file: {credential: NAME} for a "
          "systemd credential", path, key, key);
}

static const char *const s_kafka_protocols [] = { "plaintext", "ssl", "sasl_plaintext",
                                                  "sasl_ssl", NULL };
static const char *const s_sasl_mechanisms [] = { "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512",
                                                  "OAUTHBEARER", NULL };

static void
s_sasl_mechanism (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    const char *text;
    char shown [64], choices [128];
    if (s_is_null (node)) {
        s_at (ctx, node, "%s: a value is required", path);
        return;
    }
    if (!s_get_string (ctx, node, path, &text))
        return;
    int choice = s_choice (s_sasl_mechanisms, text);
    if (choice < 0) {
        s_choices_text (s_sasl_mechanisms, choices, sizeof choices);
        s_at (ctx, node, "%s: must be one of: %s; got '%s'", path, choices,
              s_show (text, shown, sizeof shown));
        return;
    }
    ((mesh_kafka_security_t *) base)->mechanism = (mesh_sasl_mechanism_t) (choice + 1);
}

//  The token endpoint of an OIDC provider: https, no credentials in it.
static const char *
s_check_token_url (const char *text)
{
    if (strncmp (text, "https://", 8))
        return "an https:// URL (the client secret is sent there)";
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return "a URL without spaces or control characters";
    size_t authority = strcspn (text + 8, "/?#");
    if (authority == 0)
        return "a URL with a host";
    if (memchr (text + 8, '@', authority))
        return "a URL without credentials (the client secret goes in client_secret_file)";
    return strlen (text) < 2048 ? NULL : "a URL shorter than 2048 characters";
}

enum { O_URL, O_CLIENT_ID, O_SECRET_FILE, O_SCOPE, O_SECRET };
static const s_field_t s_oauth_fields [] = {
    [O_URL] = { .key = "token_endpoint_url", .type = F_STRING, .no_echo = true,
                .offset = offsetof (mesh_kafka_security_t, token_endpoint_url),
                .check = s_check_token_url },
    [O_CLIENT_ID] = S_STR ("client_id", mesh_kafka_security_t, client_id, s_check_line),
    [O_SECRET_FILE] = { .key = "client_secret_file", .type = F_CALL,
                        .handler = s_client_secret_file },
    [O_SCOPE] = S_STR ("scope", mesh_kafka_security_t, scope, s_check_line),
    [O_SECRET] = { .key = "client_secret", .type = F_CALL, .handler = s_inline_secret },
    { NULL }
};

enum { L_MECHANISM, L_USERNAME, L_PASSWORD_FILE, L_ALLOW, L_OAUTH, L_PASSWORD };
static const s_field_t s_sasl_fields [] = {
    [L_MECHANISM] = { .key = "mechanism", .type = F_CALL, .handler = s_sasl_mechanism },
    [L_USERNAME] = S_STR ("username", mesh_kafka_security_t, username, s_check_line),
    [L_PASSWORD_FILE] = { .key = "password_file", .type = F_CALL, .handler = s_password_file },
    [L_ALLOW] = { .key = "allow_plaintext_password", .type = F_BOOL,
                  .offset = offsetof (mesh_kafka_security_t, allow_plaintext_password) },
    [L_OAUTH] = { .key = "oauthbearer", .type = F_SECTION, .sub = s_oauth_fields },
    [L_PASSWORD] = { .key = "password", .type = F_CALL, .handler = s_inline_secret },
    { NULL }
};

enum { T_CA, T_CERT, T_KEY, T_KEY_PASSWORD_FILE, T_VERIFY, T_KEY_PASSWORD };
static const s_field_t s_ssl_fields [] = {
    [T_CA] = { .key = "ca_file", .type = F_CALL, .handler = s_ca_file },
    [T_CERT] = { .key = "cert_file", .type = F_CALL, .handler = s_cert_file },
    [T_KEY] = { .key = "key_file", .type = F_CALL, .handler = s_key_file },
    [T_KEY_PASSWORD_FILE] = { .key = "key_password_file", .type = F_CALL,
                              .handler = s_key_password_file },
    [T_VERIFY] = { .key = "verify_hostname", .type = F_BOOL,
                   .offset = offsetof (mesh_kafka_security_t, verify_hostname) },
    [T_KEY_PASSWORD] = { .key = "key_password", .type = F_CALL, .handler = s_inline_secret },
    { NULL }
};

enum { Y_PROTOCOL, Y_SSL, Y_SASL };
static const s_field_t s_security_fields [] = {
    [Y_PROTOCOL] = { .key = "protocol", .type = F_ENUM, .required = true,
                     .offset = offsetof (mesh_kafka_security_t, protocol),
                     .choices = s_kafka_protocols },
    [Y_SSL] = { .key = "ssl", .type = F_SECTION, .sub = s_ssl_fields },
    [Y_SASL] = { .key = "sasl", .type = F_SECTION, .sub = s_sasl_fields },
    { NULL }
};

//  Whether this build of librdkafka has FEATURE (a word of its builtin.features).
static bool
s_rdkafka_feature (const char *feature)
{
    char features [512];
    size_t size = sizeof features;
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    bool found = false;
    if (rd_kafka_conf_get (conf, "builtin.features", features, &size) == RD_KAFKA_CONF_OK)
        for (char *word = strtok (features, ","); word && !found; word = strtok (NULL, ","))
            found = !strcmp (word, feature);
    rd_kafka_conf_destroy (conf);
    return found;
}

//  The combinations, once every key is read.  SEEN: the security block's keys; the ssl and
//  sasl sections' keys are found again in their nodes.
static void
s_security_check (s_ctx_t *ctx, mesh_kafka_security_t *sec, s_node_t *node, s_node_t **seen,
                  const char *path)
{
    if (!s_given (seen [Y_PROTOCOL]))
        return;                         //  reported; the rest depends on it
    const char *protocol = s_kafka_protocols [sec->protocol];
    bool ssl = sec->protocol == MESH_KAFKA_SSL || sec->protocol == MESH_KAFKA_SASL_SSL;
    bool sasl = sec->protocol == MESH_KAFKA_SASL_PLAINTEXT
             || sec->protocol == MESH_KAFKA_SASL_SSL;
    s_node_t *tls = seen [Y_SSL], *auth = seen [Y_SASL];
    if (ssl && !s_rdkafka_feature ("ssl"))
        s_at (ctx, seen [Y_PROTOCOL], "%s.protocol: %s needs TLS, which this build of "
              "librdkafka lacks", path, protocol);
    if (tls && !s_is_null (tls) && !ssl)
        s_at (ctx, tls, "%s.ssl: only used with protocol ssl or sasl_ssl (protocol is %s): "
              "TLS files with a plaintext connection would be silently ignored", path, protocol);
    if (auth && !s_is_null (auth) && !sasl)
        s_at (ctx, auth, "%s.sasl: only used with protocol sasl_plaintext or sasl_ssl "
              "(protocol is %s)", path, protocol);
    if (ssl) {
        if (!sec->cert_file != !sec->key_file && s_given (s_either (s_find (tls, "cert_file"),
                                                          s_find (tls, "key_file"), NULL)))
            s_at (ctx, s_either (s_find (tls, "cert_file"), s_find (tls, "key_file"), tls),
                  "%s.ssl: cert_file and key_file go together (a client certificate needs its "
                  "key)", path);
        if (sec->key_password_file && !sec->key_file)
            s_at (ctx, s_find (tls, "key_password_file"), "%s.ssl.key_password_file: only "
                  "used with key_file", path);
    }
    if (!sasl)
        return;
    const char *mechanism = mesh_kafka_conf_mechanism_name (sec->mechanism);
    if (!mechanism) {
        if (!s_find (auth, "mechanism"))
            s_at (ctx, auth && !s_is_null (auth) ? auth : node, "%s.sasl.mechanism: required "
                  "with protocol %s (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)", path,
                  protocol);
        return;
    }
    s_node_t *at = s_find (auth, "mechanism");
    char sub [S_PATH_MAX];
    snprintf (sub, sizeof sub, "%s.sasl", path);
    if (sec->mechanism == MESH_SASL_OAUTHBEARER) {
        char why [512];
        if (mesh_kafka_conf_try ("sasl.oauthbearer.method", "oidc", why, sizeof why) != 0)
            s_at (ctx, at, "%s.mechanism: OAUTHBEARER (OIDC) cannot be used with this "
                  "librdkafka: %s", sub, why);
        if (s_find (auth, "username") || s_find (auth, "password_file"))
            s_at (ctx, s_either (s_find (auth, "username"), s_find (auth, "password_file"), at),
                  "%s: username and password_file are for PLAIN and SCRAM; OAUTHBEARER uses "
                  "oauthbearer.client_id and client_secret_file", sub);
        s_node_t *oauth = s_find (auth, "oauthbearer");
        static const char *const needed [] = { "token_endpoint_url", "client_id",
                                               "client_secret_file", NULL };
        for (int i = 0; needed [i]; i++)
            if (!s_find (oauth, needed [i]))
                s_at (ctx, oauth && !s_is_null (oauth) ? oauth : at, "%s.oauthbearer.%s: "
                      "required with mechanism OAUTHBEARER", sub, needed [i]);
        return;
    }
    const char *feature = sec->mechanism == MESH_SASL_PLAIN ? "sasl_plain" : "sasl_scram";
    if (!s_rdkafka_feature (feature))
        s_at (ctx, at, "%s.mechanism: %s is not in this build of librdkafka", sub, mechanism);
    if (s_find (auth, "oauthbearer"))
        s_at (ctx, s_find (auth, "oauthbearer"), "%s.oauthbearer: only used with mechanism "
              "OAUTHBEARER (mechanism is %s)", sub, mechanism);
    if (!s_find (auth, "username"))
        s_at (ctx, auth, "%s.username: required with mechanism %s", sub, mechanism);
    if (!s_find (auth, "password_file"))
        s_at (ctx, auth, "%s.password_file: required with mechanism %s (a file holding the "
              "password, or {credential: NAME})", sub, mechanism);
    if (sec->mechanism == MESH_SASL_PLAIN && sec->protocol == MESH_KAFKA_SASL_PLAINTEXT
        && !sec->allow_plaintext_password)
        s_at (ctx, at, "%s.mechanism: PLAIN over sasl_plaintext sends the password "
              "unencrypted; use protocol sasl_ssl, or set allow_plaintext_password: true to "
              "accept that", sub);
}

static void
s_kafka_security (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_kafka_security_t *sec = &((mesh_config_t *) base)->kafka_security;
    s_node_t *seen [S_MAX_FIELDS];
    if (s_is_null (node)) {
        s_at (ctx, node, "%s: expected a mapping with at least protocol", path);
        return;
    }
    sec->given = true;
    s_walk (ctx, node, path, s_security_fields, sec, seen);
    if (node->kind == S_MAPPING)
        s_security_check (ctx, sec, node, seen, path);
}

//  librdkafka property names: lower case, digits, '.', '_'.
static const char *
s_check_property (const char *text)
{
    size_t length = strlen (text);
    bool good = length <= 128 && islower ((unsigned char) text [0]);
    for (size_t i = 1; good && i < length; i++)
        good = islower ((unsigned char) text [i]) || isdigit ((unsigned char) text [i])
            || text [i] == '.' || text [i] == '_';
    return good ? NULL : "a librdkafka property name such as socket.keepalive.enable";
}

static void
s_kafka_properties (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    s_node_t **keys, **values;
    size_t count = s_entries (ctx, node, path, s_check_property, &keys, &values);
    cfg->kafka_properties = s_calloc (ctx, count, sizeof *cfg->kafka_properties);
    for (size_t i = 0; cfg->kafka_properties && i < count; i++) {
        char sub [S_PATH_MAX], shown [64], what [96], why [512];
        s_join (sub, path, keys [i]->text);
        const char *refusal = mesh_kafka_conf_refusal (keys [i]->text);
        if (refusal) {
            s_at (ctx, keys [i], "%s: refused: %s", sub, refusal);
            continue;
        }
        s_node_t *value = values [i];
        if (value->kind != S_SCALAR || s_is_null (value)) {
            s_at (ctx, value, "%s: expected a value (string, number or boolean), got %s", sub,
                  s_what (value, what, sizeof what));
            continue;
        }
        const char *text;
        if (!s_get_string (ctx, value, sub, &text))
            continue;
        const char *bad = s_check_line (text);
        if (bad) {
            s_at (ctx, value, "%s: expected %s", sub, bad);
            continue;
        }
        if (mesh_kafka_conf_try (keys [i]->text, text, why, sizeof why) != 0) {
            s_at (ctx, value, "%s: librdkafka refuses '%s': %s", sub,
                  s_show (text, shown, sizeof shown), why);
            continue;
        }
        mesh_kafka_property_t *p = &cfg->kafka_properties [cfg->kafka_property_count];
        p->key = s_strdup (ctx, keys [i]->text);
        p->value = s_strdup (ctx, text);
        p->pos = (mesh_config_pos_t) { value->line, value->col };
        cfg->kafka_property_count++;
    }
    free (keys);
    free (values);
}

static void
s_security_free (mesh_kafka_security_t *sec)
{
    free (sec->ca_file);
    free (sec->cert_file);
    free (sec->key_file);
    free (sec->key_password_file);
    free (sec->username);
    free (sec->password_file);
    free (sec->token_endpoint_url);
    free (sec->client_id);
    free (sec->client_secret_file);
    free (sec->scope);
}

static void
s_kafka_security_free (mesh_config_t *cfg)
{
    s_security_free (&cfg->kafka_security);
    for (size_t i = 0; i < cfg->kafka_property_count; i++) {
        free (cfg->kafka_properties [i].key);
        free (cfg->kafka_properties [i].value);
    }
    free (cfg->kafka_properties);
}

static const s_field_t s_embedded_fields [] = {
    S_NUM ("partitions", mesh_config_t, embedded_partitions, F_INT, 1, 256),
    { .key = "topics", .type = F_LIST, .offset = offsetof (mesh_config_t, embedded_topics),
      .count_offset = offsetof (mesh_config_t, embedded_topic_count), .check = s_check_topic,
      .unique = true },
    { NULL }
};

enum { K_BROKERS, K_SESSION, K_COMMIT, K_PREFETCH, K_EMBEDDED, K_SECURITY, K_PROPERTIES };
static const s_field_t s_kafka_fields [] = {
    [K_BROKERS] = { .key = "brokers", .type = F_CALL, .required = true, .handler = s_brokers },
    [K_SESSION] = S_NUM ("session_timeout_ms", mesh_config_t, session_timeout_ms, F_INT,
                         1, 3600000),
    [K_COMMIT] = S_NUM ("commit_interval_ms", mesh_config_t, commit_interval_ms, F_INT,
                        0, 86400000),
    [K_PREFETCH] = S_NUM ("prefetch_messages", mesh_config_t, prefetch_messages, F_INT,
                          1000, 10000000),
    [K_EMBEDDED] = { .key = "embedded", .type = F_SECTION, .sub = s_embedded_fields },
    [K_SECURITY] = { .key = "security", .type = F_CALL, .handler = s_kafka_security },
    [K_PROPERTIES] = { .key = "properties", .type = F_CALL, .handler = s_kafka_properties },
    { NULL }
};

static void
s_kafka (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    s_node_t *seen [S_MAX_FIELDS];
    s_walk (ctx, node, path, s_kafka_fields, cfg, seen);
    if (seen [K_EMBEDDED] && !cfg->embedded && cfg->brokers)
        s_at (ctx, seen [K_EMBEDDED], "%s.embedded: only allowed when brokers is \"embedded\" "
              "(brokers is '%s')", path, cfg->brokers);
    ctx->embedded_topics_given = seen [K_EMBEDDED] && s_find (seen [K_EMBEDDED], "topics");
    if (cfg->embedded && seen [K_SECURITY])
        s_at (ctx, seen [K_SECURITY], "%s.security: not used with the embedded broker (it "
              "listens in plaintext on loopback only, for demos and tests); name a real "
              "cluster in brokers, or remove this block", path);
}

//  --------------------------------------------------------------------------
//  gates:

static const s_field_t s_gates_fields [] = {
    S_NUM ("instructions", mesh_config_t, lua_instructions, F_LONG, 1000, 1000000000),
    S_NUM ("memory", mesh_config_t, lua_memory, F_SIZE, 65536, 4294967296.0),
    S_NUM ("time_ms", mesh_config_t, lua_time_ms, F_INT, 1, 60000),
    { .key = "rules", .type = F_LIST, .offset = offsetof (mesh_config_t, global_rules),
      .count_offset = offsetof (mesh_config_t, global_rule_count), .check = s_check_path,
      .is_path = true, .pos_offset = offsetof (mesh_config_t, global_rule_pos) },
    { NULL }
};

//  --------------------------------------------------------------------------
//  sandbox: (agents/confine.c applies it)

//  A user or group name as useradd and systemd-sysusers accept it; numeric ids are
//  refused so that the config names who the agents run as.
static const char *
s_check_account (const char *text)
{
    size_t length = strlen (text);
    bool good = length <= 32 && (islower ((unsigned char) text [0]) || text [0] == '_');
    for (size_t i = 1; good && i < length; i++) {
        unsigned char c = (unsigned char) text [i];
        good = islower (c) || isdigit (c) || c == '_' || c == '-' || c == '.';
    }
    return good ? NULL : "a user or group name matching [a-z_][a-z0-9_.-]{0,31}";
}

static const char *const s_seccomp_modes [] = { "kill", "log", "off", NULL };

enum { X_USER, X_GROUP, X_SECCOMP };
static const s_field_t s_sandbox_fields [] = {
    [X_USER] = { .key = "user", .type = F_STRING, .check = s_check_account,
                 .offset = offsetof (mesh_sandbox_config_t, user) },
    [X_GROUP] = { .key = "group", .type = F_STRING, .check = s_check_account,
                  .offset = offsetof (mesh_sandbox_config_t, group) },
    [X_SECCOMP] = { .key = "seccomp", .type = F_ENUM, .choices = s_seccomp_modes,
                    .offset = offsetof (mesh_sandbox_config_t, seccomp) },
    { NULL }
};

static void
s_sandbox (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    s_node_t *seen [S_MAX_FIELDS];
    s_walk (ctx, node, path, s_sandbox_fields, &cfg->sandbox, seen);
    if (cfg->sandbox.group && !cfg->sandbox.user && !seen [X_USER])
        s_at (ctx, seen [X_GROUP], "%s.group: only allowed with %s.user (the agents switch "
              "user and group together); add user, or remove group", path, path);
}

//  --------------------------------------------------------------------------
//  backends:

static const char *const s_backend_kinds [] = { "scripted", "openai", NULL };

//  backends.X.limits: the upper bounds keep every recorded answer far below the
//  protocol's 4 MiB message and the supervisor's JSON depth (docs/reasoning.md).
static const s_field_t s_limits_fields [] = {
    S_NUM ("max_bytes", mesh_backend_config_t, limits.max_bytes, F_SIZE, 1, 1048576),
    S_NUM ("max_depth", mesh_backend_config_t, limits.max_depth, F_INT, 1, 64),
    S_NUM ("max_keys", mesh_backend_config_t, limits.max_keys, F_SIZE, 1, 4096),
    S_NUM ("max_string", mesh_backend_config_t, limits.max_string, F_SIZE, 1, 65536),
    { NULL }
};

//  In the order of mesh_backend_flavor_t.
static const char *const s_flavor_names [] = { "auto", "openai", "llamacpp", "vllm", "ollama",
                                                "ollama-native", "tgi", NULL };
_Static_assert (sizeof s_flavor_names / sizeof s_flavor_names [0] == MESH_FLAVOR_COUNT_ + 1,
                "s_flavor_names lists every mesh_backend_flavor_t");

//  backends.X.retry and backends.X.circuit (openai).
static const s_field_t s_retry_fields [] = {
    S_NUM ("attempts", mesh_backend_config_t, retry_attempts, F_INT, 1, 10),
    S_NUM ("base_ms", mesh_backend_config_t, retry_base_ms, F_INT, 1, 60000),
    S_NUM ("max_ms", mesh_backend_config_t, retry_max_ms, F_INT, 1, 600000),
    { NULL }
};

static const s_field_t s_circuit_fields [] = {
    S_NUM ("failures", mesh_backend_config_t, circuit_failures, F_INT, 1, 1000),
    S_NUM ("open_ms", mesh_backend_config_t, circuit_open_ms, F_INT, 100, 3600000),
    { NULL }
};

//  A stop string goes into every request as a JSON string: any bytes but NUL (refused
//  when read), newlines included, since model stop strings are often "\n\n" or "\nUser:".
static const char *
s_check_stop (const char *text)
{
    return strlen (text) <= 64 ? NULL : "a stop string of at most 64 bytes";
}

//  Ollama's keep_alive, in the forms we pass through unchanged: "-1" (keep the model
//  loaded), "0" (unload at once), or a whole number of seconds, minutes or hours.
static const char *
s_check_keep_alive (const char *text)
{
    if (!strcmp (text, "-1"))
        return NULL;
    size_t digits = strspn (text, "0123456789");
    bool good = digits >= 1 && digits <= 9
             && (!text [digits] || (strchr ("smh", text [digits]) && !text [digits + 1]));
    return good ? NULL : "an Ollama duration: -1 (forever), 0, or digits with an optional "
                         "unit s, m or h (30s, 5m, 1h)";
}

//  Every key of a backend, and the kind it belongs to (s_backend_scope): a key of the
//  other kind is an error, never silently ignored.
enum { B_KIND, B_FILE, B_URL, B_MODEL, B_KEY, B_TIMEOUT, B_CONNECT, B_TEMPERATURE, B_SCHEMA,
       B_LIMITS, B_LINK_LOCAL, B_BUDGET, B_FLAVOR, B_STREAM, B_FIRST_TOKEN, B_IDLE, B_RETRY,
       B_CIRCUIT, B_PROBE, B_CONTEXT, B_STOP, B_SEED, B_KEEP_ALIVE, B_COUNT_ };
static const s_field_t s_backend_fields [] = {
    [B_KIND] = { .key = "kind", .type = F_ENUM, .required = true,
                 .offset = offsetof (mesh_backend_config_t, kind), .choices = s_backend_kinds },
    [B_FILE] = S_PATHF ("file", mesh_backend_config_t, file),
    [B_URL] = { .key = "url", .type = F_STRING, .offset = offsetof (mesh_backend_config_t, url),
                .check = s_check_url, .no_echo = true },
    [B_MODEL] = S_STR ("model", mesh_backend_config_t, model, s_check_line),
    [B_KEY] = { .key = "api_key_file", .type = F_PATH, .no_echo = true,
                .offset = offsetof (mesh_backend_config_t, api_key_file), .check = s_check_path },
    [B_TIMEOUT] = S_NUM ("timeout_ms", mesh_backend_config_t, timeout_ms, F_INT, 1, 3600000),
    [B_CONNECT] = S_NUM ("connect_timeout_ms", mesh_backend_config_t, connect_timeout_ms, F_INT,
                         1, 600000),
    [B_TEMPERATURE] = S_NUM ("temperature", mesh_backend_config_t, temperature, F_DOUBLE, 0, 2),
    [B_SCHEMA] = { .key = "json_schema", .type = F_BOOL,
                   .offset = offsetof (mesh_backend_config_t, json_schema) },
    [B_LIMITS] = { .key = "limits", .type = F_SECTION, .sub = s_limits_fields },
    [B_LINK_LOCAL] = { .key = "allow_link_local", .type = F_BOOL,
                       .offset = offsetof (mesh_backend_config_t, allow_link_local) },
    [B_BUDGET] = { .key = "budget", .type = F_CALL, .handler = s_backend_budget },
    [B_FLAVOR] = { .key = "flavor", .type = F_ENUM, .choices = s_flavor_names,
                   .offset = offsetof (mesh_backend_config_t, flavor) },
    [B_STREAM] = { .key = "stream", .type = F_BOOL,
                   .offset = offsetof (mesh_backend_config_t, stream) },
    [B_FIRST_TOKEN] = S_NUM ("first_token_timeout_ms", mesh_backend_config_t,
                             first_token_timeout_ms, F_INT, 1, 3600000),
    [B_IDLE] = S_NUM ("idle_timeout_ms", mesh_backend_config_t, idle_timeout_ms, F_INT,
                      1, 3600000),
    [B_RETRY] = { .key = "retry", .type = F_SECTION, .sub = s_retry_fields },
    [B_CIRCUIT] = { .key = "circuit", .type = F_SECTION, .sub = s_circuit_fields },
    [B_PROBE] = S_NUM ("probe_interval_s", mesh_backend_config_t, probe_interval_s, F_INT,
                       1, 86400),
    [B_CONTEXT] = S_NUM ("context_tokens", mesh_backend_config_t, context_tokens, F_LONG,
                         0, 100000000),
    [B_STOP] = { .key = "stop", .type = F_LIST, .check = s_check_stop, .unique = true,
                 .offset = offsetof (mesh_backend_config_t, stop),
                 .count_offset = offsetof (mesh_backend_config_t, stop_count) },
    [B_SEED] = { .key = "seed", .type = F_BOOL, .offset = offsetof (mesh_backend_config_t, seed) },
    [B_KEEP_ALIVE] = S_STR ("keep_alive", mesh_backend_config_t, keep_alive,
                            s_check_keep_alive),
    { NULL }
};
_Static_assert (sizeof s_backend_fields / sizeof s_backend_fields [0] == B_COUNT_ + 1,
                "s_backend_fields has an entry for every B_ key");

//  Which kind each key belongs to.  Written out for every key, so that a new key has
//  to be placed here (a zero would make it a both-kinds key: see the assertion).
typedef enum { S_KIND_BOTH = 1, S_KIND_SCRIPTED, S_KIND_OPENAI } s_backend_scope_t;
static const s_backend_scope_t s_backend_scope [B_COUNT_] = {
    [B_KIND] = S_KIND_BOTH,         [B_FILE] = S_KIND_SCRIPTED,     [B_URL] = S_KIND_OPENAI,
    [B_MODEL] = S_KIND_OPENAI,      [B_KEY] = S_KIND_OPENAI,        [B_TIMEOUT] = S_KIND_OPENAI,
    [B_CONNECT] = S_KIND_OPENAI,    [B_TEMPERATURE] = S_KIND_OPENAI,
    [B_SCHEMA] = S_KIND_OPENAI,     [B_LIMITS] = S_KIND_BOTH,
    [B_LINK_LOCAL] = S_KIND_OPENAI, [B_BUDGET] = S_KIND_BOTH,       [B_FLAVOR] = S_KIND_OPENAI,
    [B_STREAM] = S_KIND_OPENAI,     [B_FIRST_TOKEN] = S_KIND_OPENAI, [B_IDLE] = S_KIND_OPENAI,
    [B_RETRY] = S_KIND_OPENAI,      [B_CIRCUIT] = S_KIND_OPENAI,    [B_PROBE] = S_KIND_OPENAI,
    [B_CONTEXT] = S_KIND_OPENAI,    [B_STOP] = S_KIND_OPENAI,       [B_SEED] = S_KIND_OPENAI,
    [B_KEEP_ALIVE] = S_KIND_OPENAI,
};

//  The host of URL (checked by s_check_url) if it is a link-local or cloud-metadata
//  address, as written: a model server never lives there, and a request to one can
//  hand out the host's cloud credentials.  NULL otherwise.  Only what the URL says is
//  known here: a DNS name that resolves there later is not (see docs/configuration.md).
//  The host of URL (checked by s_check_url_common) in lower case, without brackets, port
//  or trailing dots, in HOST; NULL if there is none or it does not fit.
static const char *
s_url_host (const char *url, char *host, size_t size)
{
    const char *rest = strstr (url, "://") + 3;
    size_t length = strcspn (rest, "/?#");
    const char *start = rest, *end = rest + length;
    if (*start == '[') {                //  [v6]:port
        start++;
        const char *close = memchr (start, ']', (size_t) (end - start));
        end = close ? close : end;
    }
    else {
        const char *colon = memchr (start, ':', (size_t) (end - start));
        end = colon ? colon : end;
    }
    length = (size_t) (end - start);
    while (length && start [length - 1] == '.')
        length--;                       //  "metadata.google.internal." is the same name
    if (length == 0 || length >= size)
        return NULL;
    for (size_t i = 0; i < length; i++)
        host [i] = (char) tolower ((unsigned char) start [i]);
    host [length] = 0;
    return host;
}

static const char *
s_metadata_host (const char *url, char *host, size_t size)
{
    if (!s_url_host (url, host, size))
        return NULL;
    static const char *const names [] = { "metadata.google.internal", "metadata.goog",
                                          "metadata", "instance-data",
                                          "instance-data.ec2.internal", NULL };
    if (s_choice (names, host) >= 0)
        return host;
    struct in_addr v4;
    struct in6_addr v6;
    uint32_t address = 0;
    //  inet_aton reads every form curl does (169.254.169.254, 2852039166, 0xa9fea9fe).
    if (inet_aton (host, &v4))
        address = ntohl (v4.s_addr);
    else
    if (inet_pton (AF_INET6, host, &v6) == 1) {
        const uint8_t *b = v6.s6_addr;
        static const uint8_t ec2 [16] = { 0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54 };
        if ((b [0] == 0xfe && (b [1] & 0xc0) == 0x80) || !memcmp (b, ec2, 16))
            return host;
        static const uint8_t mapped [12] = { [10] = 0xff, [11] = 0xff };
        if (memcmp (b, mapped, 12))
            return NULL;
        address = (uint32_t) b [12] << 24 | (uint32_t) b [13] << 16 | (uint32_t) b [14] << 8
                | b [15];
    }
    else
        return NULL;
    if ((address >> 16) == 0xa9fe       //  169.254.0.0/16, AWS, GCP, Azure, OCI, ...
    ||  address == 0x646464c8)          //  100.100.100.200, Alibaba Cloud
        return host;
    return NULL;
}

//  The host of URL if it is written as a loopback, private or otherwise local address
//  (localhost, 127/8, 10/8, 172.16/12, 192.168/16, 100.64/10, 0/8, ::1, ::, fc00::/7, and
//  those mapped into IPv6); NULL otherwise.  A webhook may only go there with
//  allow_private.  As with s_metadata_host, only what the URL says is known here.
static const char *
s_private_host (const char *url, char *host, size_t size)
{
    if (!s_url_host (url, host, size))
        return NULL;
    size_t length = strlen (host);
    if (!strcmp (host, "localhost")
    ||  (length > 10 && !strcmp (host + length - 10, ".localhost")))
        return host;
    struct in_addr v4;
    struct in6_addr v6;
    uint32_t address = 0;
    if (inet_aton (host, &v4))
        address = ntohl (v4.s_addr);
    else
    if (inet_pton (AF_INET6, host, &v6) == 1) {
        const uint8_t *b = v6.s6_addr;
        static const uint8_t zero [16], loop [16] = { [15] = 1 };
        if (!memcmp (b, zero, 16) || !memcmp (b, loop, 16) || (b [0] & 0xfe) == 0xfc)
            return host;
        static const uint8_t mapped [12] = { [10] = 0xff, [11] = 0xff };
        if (memcmp (b, mapped, 12))
            return NULL;
        address = (uint32_t) b [12] << 24 | (uint32_t) b [13] << 16 | (uint32_t) b [14] << 8
                | b [15];
    }
    else
        return NULL;
    if ((address >> 24) == 0 || (address >> 24) == 10 || (address >> 24) == 127
    ||  (address >> 20) == 0xac1        //  172.16.0.0/12
    ||  (address >> 16) == 0xc0a8       //  192.168.0.0/16
    ||  (address >> 22) == 0x191)       //  100.64.0.0/10 (carrier-grade NAT)
        return host;
    return NULL;
}

//  The deadlines, retries and the rest of an openai backend that involve more than one
//  key.  The first-token and idle deadlines default to 15 s and 10 s, but never to more
//  than the whole call's (a short timeout_ms alone is a valid config); written out, they
//  must fit in it.
static void
s_backend_deadlines (s_ctx_t *ctx, mesh_backend_config_t *backend, s_node_t *node,
                     s_node_t **seen, const char *path)
{
    if (!s_given (seen [B_FIRST_TOKEN]))
        backend->first_token_timeout_ms = backend->timeout_ms < 15000 ? backend->timeout_ms
                                                                      : 15000;
    else
    if (backend->first_token_timeout_ms > backend->timeout_ms)
        s_at (ctx, seen [B_FIRST_TOKEN], "%s.first_token_timeout_ms: must not exceed timeout_ms "
              "(%d), got %d: the whole call's deadline would end the wait first", path,
              backend->timeout_ms, backend->first_token_timeout_ms);
    if (!s_given (seen [B_IDLE]))
        backend->idle_timeout_ms = backend->timeout_ms < 10000 ? backend->timeout_ms : 10000;
    else
    if (backend->idle_timeout_ms > backend->timeout_ms)
        s_at (ctx, seen [B_IDLE], "%s.idle_timeout_ms: must not exceed timeout_ms (%d), got "
              "%d: the whole call's deadline would end the wait first", path,
              backend->timeout_ms, backend->idle_timeout_ms);
    if (backend->retry_base_ms > backend->retry_max_ms) {
        s_node_t *retry = seen [B_RETRY];
        s_at (ctx, s_either (s_find (retry, "base_ms"), s_find (retry, "max_ms"), node),
              "%s.retry.base_ms: must be at most max_ms (%d), got %d", path,
              backend->retry_max_ms, backend->retry_base_ms);
    }
    s_node_t *stop = seen [B_STOP];
    if (stop && stop->kind == S_SEQUENCE && stop->count > MESH_BACKEND_STOP_MAX)
        s_at (ctx, stop, "%s.stop: at most %d stop strings (TGI refuses more than %d), got %zu",
              path, MESH_BACKEND_STOP_MAX, MESH_BACKEND_STOP_MAX, stop->count);
    if (s_given (seen [B_KEEP_ALIVE]) && backend->flavor != MESH_FLAVOR_OLLAMA_NATIVE)
        s_at (ctx, seen [B_KEEP_ALIVE], "%s.keep_alive: only for flavor ollama-native (Ollama's "
              "own /api/chat), and this backend's flavor is %s; set flavor: ollama-native or "
              "remove keep_alive", path, s_flavor_names [backend->flavor]);
}

static void
s_backend (s_ctx_t *ctx, mesh_backend_config_t *backend, s_node_t *node, const char *path)
{
    s_node_t *seen [S_MAX_FIELDS];
    s_walk (ctx, node, path, s_backend_fields, backend, seen);
    if (!s_given (seen [B_KIND]))
        return;                         //  reported; what else is wrong depends on the kind
    bool openai = backend->kind == MESH_BACKEND_OPENAI;
    const char *kind = s_backend_kinds [backend->kind];
    //  Keys that belong to the other kind are errors, not silently ignored.
    for (int i = 0; i < B_COUNT_; i++) {
        s_backend_scope_t scope = s_backend_scope [i];
        assert (scope == S_KIND_BOTH || scope == S_KIND_SCRIPTED || scope == S_KIND_OPENAI);
        if (seen [i] && scope != S_KIND_BOTH && (scope == S_KIND_OPENAI) != openai)
            s_at (ctx, seen [i], "%s.%s: only for kind %s (this backend is %s)", path,
                  s_backend_fields [i].key, scope == S_KIND_OPENAI ? "openai" : "scripted",
                  kind);
    }
    if (!openai && !s_given (seen [B_FILE]))
        s_at (ctx, node, "%s: kind scripted requires 'file' (the JSON-lines responses file)", path);
    if (openai && !s_given (seen [B_URL]))
        s_at (ctx, node, "%s: kind openai requires 'url' (e.g. http://127.0.0.1:8080)", path);
    if (openai && !s_given (seen [B_MODEL]))
        s_at (ctx, node, "%s: kind openai requires 'model' (the model name sent in requests)",
              path);
    if (openai && backend->connect_timeout_ms > backend->timeout_ms)
        s_at (ctx, s_either (seen [B_CONNECT], seen [B_TIMEOUT], node),
              "%s.connect_timeout_ms: must not exceed timeout_ms (%d), got %d", path,
              backend->timeout_ms, backend->connect_timeout_ms);
    if (openai)
        s_backend_deadlines (ctx, backend, node, seen, path);
    char host [256];
    if (backend->url && !backend->allow_link_local
    &&  s_metadata_host (backend->url, host, sizeof host))
        s_at (ctx, seen [B_URL], "%s.url: host %s is a link-local or cloud-metadata address, "
              "where no model server lives and a request can leak the host's cloud "
              "credentials; name the server's own address, or set allow_link_local: true if "
              "it really is there", path, host);
    if (backend->url) {                 //  "http://h:8080/" and "http://h:8080" are one server
        size_t length = strlen (backend->url);
        while (length && backend->url [length - 1] == '/')
            backend->url [--length] = 0;
    }
}

void
mesh_config_output_limits_default (mesh_output_limits_t *limits)
{
    *limits = (mesh_output_limits_t) {
        .max_bytes = 65536, .max_depth = 32, .max_keys = 512, .max_string = 4096,
    };
}

static void
s_backends (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    s_node_t **keys, **values;
    size_t count = s_entries (ctx, node, path, s_check_name, &keys, &values);
    cfg->backends = s_calloc (ctx, count, sizeof *cfg->backends);
    for (size_t i = 0; cfg->backends && i < count; i++) {
        mesh_backend_config_t *backend = &cfg->backends [cfg->backend_count++];
        backend->name = s_strdup (ctx, keys [i]->text);
        backend->kind = MESH_BACKEND_SCRIPTED;
        backend->timeout_ms = 30000;
        backend->connect_timeout_ms = 2000;
        backend->temperature = 0;
        backend->json_schema = true;
        mesh_config_output_limits_default (&backend->limits);
        backend->flavor = MESH_FLAVOR_AUTO;
        backend->stream = true;
        backend->first_token_timeout_ms = 15000;    //  both cut to timeout_ms if shorter
        backend->idle_timeout_ms = 10000;
        backend->retry_attempts = 3;
        backend->retry_base_ms = 250;
        backend->retry_max_ms = 5000;
        backend->circuit_failures = 5;
        backend->circuit_open_ms = 30000;
        backend->probe_interval_s = 300;
        backend->context_tokens = 0;
        backend->seed = true;
        char sub [S_PATH_MAX];
        s_join (sub, path, keys [i]->text);
        s_backend (ctx, backend, values [i], sub);
    }
    free (keys);
    free (values);
}

//  --------------------------------------------------------------------------
//  actions: and their params:

static void s_names_text (char *buf, size_t size, const char *prefix, const char *none,
                          size_t count, const char *(*name) (const void *, size_t),
                          const void *array);

//  In the order of mesh_param_type_t and mesh_action_kind_t.
static const char *const s_param_types [] = { "string", "integer", "number", "boolean", NULL };
static const char *const s_action_kinds [] = { "log", "kafka", "exec", "webhook", NULL };

enum { P_TYPE, P_REQUIRED, P_PATTERN, P_MAX_LENGTH, P_ENUM, P_MIN, P_MAX, P_ALLOW_DASH };
static const s_field_t s_param_fields [] = {
    [P_TYPE] = { .key = "type", .type = F_ENUM, .required = true,
                 .offset = offsetof (mesh_param_spec_t, type), .choices = s_param_types },
    [P_REQUIRED] = { .key = "required", .type = F_BOOL,
                     .offset = offsetof (mesh_param_spec_t, required) },
    [P_PATTERN] = S_STR ("pattern", mesh_param_spec_t, pattern, NULL),
    [P_MAX_LENGTH] = S_NUM ("max_length", mesh_param_spec_t, max_length, F_SIZE, 1, 1048576),
    [P_ENUM] = { .key = "enum", .type = F_LIST, .offset = offsetof (mesh_param_spec_t, enum_values),
                 .count_offset = offsetof (mesh_param_spec_t, enum_count), .unique = true,
                 .min_items = 1 },
    [P_MIN] = { .key = "min", .type = F_DOUBLE, .offset = offsetof (mesh_param_spec_t, min),
                .lo = -HUGE_VAL, .unbounded = true },
    [P_MAX] = { .key = "max", .type = F_DOUBLE, .offset = offsetof (mesh_param_spec_t, max),
                .lo = -HUGE_VAL, .unbounded = true },
    [P_ALLOW_DASH] = { .key = "allow_dash", .type = F_BOOL,
                       .offset = offsetof (mesh_param_spec_t, allow_dash) },
    { NULL }
};

//  Type-specific checks once the keys are read: which keys fit the type, the
//  pattern compiles, the enum agrees with the pattern and length, min <= max.
static void
s_param_check (s_ctx_t *ctx, mesh_param_spec_t *param, s_node_t **seen, const char *path)
{
    mesh_param_type_t type = param->type;
    const char *type_name = s_param_types [type];
    static const int string_only [] = { P_PATTERN, P_MAX_LENGTH, P_ENUM };
    for (size_t i = 0; i < sizeof string_only / sizeof string_only [0]; i++)
        if (seen [string_only [i]] && type != MESH_PARAM_STRING)
            s_at (ctx, seen [string_only [i]], "%s.%s: only for type string (this one is %s)",
                  path, s_param_fields [string_only [i]].key, type_name);
    bool numeric = type == MESH_PARAM_INTEGER || type == MESH_PARAM_NUMBER;
    for (int i = P_MIN; i <= P_MAX; i++) {
        if (!seen [i])
            continue;
        if (!numeric)
            s_at (ctx, seen [i], "%s.%s: only for type integer or number (this one is %s)",
                  path, s_param_fields [i].key, type_name);
        else {
            double value = i == P_MIN ? param->min : param->max;
            if (type == MESH_PARAM_INTEGER && !isnan (value) && value != floor (value))
                s_at (ctx, seen [i], "%s.%s: must be a whole number for type integer, got %s",
                      path, s_param_fields [i].key, seen [i]->text);
        }
    }
    //  min and max start as NaN: still NaN means absent or not a number (reported).
    param->has_min = numeric && !isnan (param->min);
    param->has_max = numeric && !isnan (param->max);
    if (!param->has_min)
        param->min = 0;
    if (!param->has_max)
        param->max = 0;
    if (param->has_min && param->has_max && param->min > param->max)
        s_at (ctx, seen [P_MAX], "%s.max: must be at least min (%g), got %g", path, param->min,
              param->max);
    if (type != MESH_PARAM_STRING || !param->pattern)
        return;
    regex_t regex;
    int rc = regcomp (&regex, param->pattern, REG_EXTENDED);
    if (rc) {
        char why [128];
        regerror (rc, &regex, why, sizeof why);
        s_at (ctx, seen [P_PATTERN], "%s.pattern: not a valid POSIX extended regular "
              "expression (%s)", path, why);
        return;
    }
    //  An enum value the pattern or the length refuses could never be accepted.
    char shown [64];
    s_node_t *values = seen [P_ENUM];
    for (size_t i = 0; param->enum_count && i < values->count; i++) {
        s_node_t *item = values->kids [i];
        if (item->kind != S_SCALAR || s_is_null (item))
            continue;                   //  reported already
        regmatch_t match;
        bool whole = regexec (&regex, item->text, 1, &match, 0) == 0 && match.rm_so == 0
                  && (size_t) match.rm_eo == item->length;
        if (!whole || item->length > param->max_length)
            s_at (ctx, item, "%s.enum[%zu]: '%s' does not fit the param's %s", path, i,
                  s_show (item->text, shown, sizeof shown), whole ? "max_length" : "pattern");
    }
    regfree (&regex);
}

static void
s_params (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_action_spec_t *action = base;
    s_node_t **keys, **values;
    size_t count = s_entries (ctx, node, path, s_check_param_name, &keys, &values);
    action->params = s_calloc (ctx, count, sizeof *action->params);
    for (size_t i = 0; action->params && i < count; i++) {
        mesh_param_spec_t *param = &action->params [action->param_count++];
        param->name = s_strdup (ctx, keys [i]->text);
        param->required = true;
        param->max_length = 256;
        param->min = param->max = NAN;
        char sub [S_PATH_MAX];
        s_join (sub, path, keys [i]->text);
        s_node_t *seen [S_MAX_FIELDS];
        s_walk (ctx, values [i], sub, s_param_fields, param, seen);
        if (s_given (seen [P_TYPE]) && seen [P_TYPE]->kind == S_SCALAR
        &&  s_choice (s_param_types, seen [P_TYPE]->text) >= 0)
            s_param_check (ctx, param, seen, sub);
    }
    free (keys);
    free (values);
}

//  kind: exec (docs/actions.md).  The program is what meshd runs on a model's proposal, so
//  it is held to the rule files' standard (mesh_config_check_trust); the model chooses only
//  the values that fill argv's {param} placeholders, never the program or argv's shape.

#define S_ARGV_MAX          64          //  template elements after the program
#define S_ARGV_ITEM_MAX     4096        //  bytes of one template element
#define S_HEADERS_MAX       32          //  extra webhook headers

static void
s_program (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_action_spec_t *action = base;
    const char *text;
    char shown [64], why [PATH_MAX + 256];
    if (s_is_null (node) || !s_get_string (ctx, node, path, &text))
        return;                         //  null: reported as missing by s_action_check
    if (text [0] != '/' || s_check_path (text)) {
        s_at (ctx, node, "%s: expected an absolute path (/usr/local/libexec/meshd/restart-unit), "
              "got '%s'; the program is executed directly, never looked up in PATH", path,
              s_show (text, shown, sizeof shown));
        return;
    }
    if (!ctx->snapshot) {               //  an agent never runs it: meshd checked these bytes
        if (mesh_config_check_trust (text, why, sizeof why)) {
            s_at (ctx, node, "%s: %s (meshd runs this program when a proposal is accepted, so "
                  "only root or meshd's user may be able to change it)", path, why);
            return;
        }
        if (access (text, X_OK) != 0) {
            s_at (ctx, node, "%s: %s is not executable (%s); chmod 0755 it", path, text,
                  strerror (errno));
            return;
        }
    }
    free (action->exec.program);
    action->exec.program = s_strdup (ctx, text);
}

static const char *
s_check_argv_item (const char *text)
{
    return strlen (text) <= S_ARGV_ITEM_MAX ? NULL : "an argument of at most 4096 bytes";
}

//  An environment entry: NAME (its value taken from meshd's environment when the program
//  starts) or NAME=value.  MESH_* are meshd's own (MESH_DECISION_ID, MESH_ACTION,
//  MESH_AGENT), so a config cannot forge them.
static const char *
s_check_env (const char *text)
{
    size_t name = strcspn (text, "=");
    bool good = name > 0 && strlen (text) <= 4096 && !s_has_control (text, false)
             && ((text [0] >= 'A' && text [0] <= 'Z') || text [0] == '_');
    for (size_t i = 1; good && i < name; i++) {
        char c = text [i];
        good = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    }
    if (good && !strncmp (text, "MESH_", 5))
        good = false;
    return good ? NULL : "NAME or NAME=value, NAME matching [A-Z_][A-Z0-9_]* and not MESH_* "
                         "(meshd sets those), at most 4096 bytes without control characters";
}

static void
s_stdin (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    static const char *const modes [] = { "null", "decision", NULL };
    const char *text;
    char shown [64];
    if (s_is_null (node) || !s_get_string (ctx, node, path, &text))
        return;                         //  null: the default, /dev/null
    int mode = s_choice (modes, text);
    if (mode < 0)
        s_at (ctx, node, "%s: must be one of: null, decision; got '%s'", path,
              s_show (text, shown, sizeof shown));
    else
        ((mesh_action_spec_t *) base)->exec.stdin_decision = mode == 1;
}

static void
s_cwd (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_action_spec_t *action = base;
    const char *text;
    char shown [64];
    if (s_is_null (node) || !s_get_string (ctx, node, path, &text))
        return;                         //  null: the default, /
    if (text [0] != '/' || s_check_path (text)) {
        s_at (ctx, node, "%s: expected an absolute directory path, got '%s'", path,
              s_show (text, shown, sizeof shown));
        return;
    }
    free (action->exec.cwd);
    action->exec.cwd = s_strdup (ctx, text);
}

//  actions.X.limits (exec): what setrlimit gives the program.
static const s_field_t s_exec_limits_fields [] = {
    S_NUM ("cpu_s", mesh_action_spec_t, exec.cpu_s, F_LONG, 1, 86400),
    //  0: no address-space limit (a program that reserves much and uses little, such as
    //  one built with AddressSanitizer or a JVM).
    S_NUM ("as_bytes", mesh_action_spec_t, exec.as_bytes, F_LONG, 0, 68719476736.0),
    S_NUM ("nofile", mesh_action_spec_t, exec.nofile, F_LONG, 16, 65536),
    S_NUM ("nproc", mesh_action_spec_t, exec.nproc, F_LONG, 1, 100000),
    { NULL }
};

//  kind: webhook (docs/actions.md).  Where it goes and how it is signed are checked here;
//  agents/act/webhook.c sends it.

//  A header meshd sets itself, or one that changes how the message is framed: never
//  from the config.  Credentials neither: secrets are never written in the config (the
//  body is signed with the secret instead).
static const char *
s_header_refused (const char *name)
{
    static const char *const own [] = { "host", "content-length", "content-type",
                                        "idempotency-key", "transfer-encoding", "connection",
                                        "keep-alive", "proxy-connection", "te", "trailer",
                                        "upgrade", "expect", NULL };
    static const char *const secret [] = { "authorization", "proxy-authorization", "cookie",
                                           NULL };
    for (int i = 0; own [i]; i++)
        if (!strcasecmp (name, own [i]))
            return "meshd sets it, or it changes how the request is framed";
    if (!strncasecmp (name, "x-mesh-", 7))
        return "X-Mesh-* are meshd's own (the signature, the decision id)";
    for (int i = 0; secret [i]; i++)
        if (!strcasecmp (name, secret [i]))
            return "secrets are never written in the config; the receiver checks the body's "
                   "signature (secret_file or secret_credential)";
    return NULL;
}

//  headers: {Name: value, ...}, stored as "Name: value".
static void
s_headers (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_action_webhook_t *hook = &((mesh_action_spec_t *) base)->webhook;
    char what [96], shown [64], sub [S_PATH_MAX];
    if (node->kind == S_INVALID || s_is_null (node))
        return;
    if (node->kind != S_MAPPING) {
        s_at (ctx, node, "%s: expected a mapping of header names to values, such as "
              "{X-Team: ops}, got %s", path, s_what (node, what, sizeof what));
        return;
    }
    size_t pairs = node->count / 2;
    if (pairs > S_HEADERS_MAX) {
        s_at (ctx, node, "%s: at most %d headers, got %zu", path, S_HEADERS_MAX, pairs);
        return;
    }
    s_strv_free (&hook->headers, hook->header_count);
    hook->header_count = 0;
    if (!pairs || !(hook->headers = s_calloc (ctx, pairs, sizeof *hook->headers)))
        return;
    for (size_t i = 0; i < pairs; i++) {
        s_node_t *key = node->kids [2 * i], *value = node->kids [2 * i + 1];
        if (key->kind == S_INVALID || value->kind == S_INVALID)
            continue;
        if (key->kind != S_SCALAR || s_is_null (key) || strlen (key->text) != key->length) {
            s_at (ctx, key, "%s: keys must be header names, got %s", path,
                  s_what (key, what, sizeof what));
            continue;
        }
        const char *name = key->text;
        bool good = key->length <= 64;
        for (size_t j = 0; good && j < key->length; j++)
            good = isalnum ((unsigned char) name [j]) || name [j] == '-';
        if (!good) {
            s_at (ctx, key, "%s: expected a header name of 1-64 of [A-Za-z0-9-], got '%s'", path,
                  s_show (name, shown, sizeof shown));
            continue;
        }
        const char *refused = s_header_refused (name);
        if (refused) {
            s_at (ctx, key, "%s: header %s is not allowed: %s", path,
                  s_show (name, shown, sizeof shown), refused);
            continue;
        }
        bool repeated = false;
        for (size_t j = 0; j < i && !repeated; j++) {
            s_node_t *earlier = node->kids [2 * j];
            if (earlier->kind == S_SCALAR && earlier->text && !strcasecmp (earlier->text, name)) {
                s_at (ctx, key, "%s: header %s is given twice (first at %d:%d; names are "
                      "case-insensitive)", path, s_show (name, shown, sizeof shown),
                      earlier->line, earlier->col);
                repeated = true;
            }
        }
        if (repeated)
            continue;
        s_join (sub, path, name);
        const char *text;
        if (!s_get_string (ctx, value, sub, &text))
            continue;
        if (strlen (text) > 4096 || s_has_control (text, false)) {
            s_at (ctx, value, "%s: expected a header value of at most 4096 bytes without CR, LF "
                  "or other control characters", sub);
            continue;
        }
        char *line = NULL;
        if (asprintf (&line, "%s: %s", name, text) < 0) {
            s_oom (ctx);
            continue;
        }
        hook->headers [hook->header_count++] = line;
    }
}

//  secret_file: the HMAC key, checked as Kafka's secret files are (there, regular, not
//  empty, not readable by others, at most 4096 bytes).  An agent loading a snapshot does
//  not read it: meshd sends webhooks, and the file may well be unreadable to agents.
static void
s_secret_file (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_action_webhook_t *hook = &((mesh_action_spec_t *) base)->webhook;
    const char *text;
    char what [96];
    if (node->kind == S_INVALID || s_is_null (node))
        return;
    if (node->kind != S_SCALAR) {
        s_at (ctx, node, "%s: expected a file path, got %s (for a systemd credential write "
              "secret_credential: NAME)", path, s_what (node, what, sizeof what));
        return;
    }
    if (!ctx->snapshot) {
        s_kafka_file (ctx, node, path, &hook->secret_file, S_FILE_SECRET);
        return;
    }
    if (s_get_string (ctx, node, path, &text) && !s_check_path (text)) {
        free (hook->secret_file);
        hook->secret_file = s_resolve (ctx, text);
    }
}

static const char *
s_check_credential_name (const char *text)
{
    size_t length = strlen (text);
    bool good = length <= 255 && strcmp (text, ".") && strcmp (text, "..");
    for (size_t i = 0; good && i < length; i++)
        good = isalnum ((unsigned char) text [i]) || strchr ("._-", text [i]);
    return good ? NULL : "a systemd credential name (1-255 of [A-Za-z0-9._-], not '.' or '..')";
}

static const s_field_t s_webhook_retry_fields [] = {
    S_NUM ("attempts", mesh_action_spec_t, webhook.attempts, F_INT, 1, 10),
    S_NUM ("base_ms", mesh_action_spec_t, webhook.retry_base_ms, F_INT, 1, 60000),
    S_NUM ("max_ms", mesh_action_spec_t, webhook.retry_max_ms, F_INT, 1, 600000),
    { NULL }
};

//  Every kind: approval and rate.

static void
s_approval (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    static const char *const modes [] = { "none", "required", NULL };
    const char *text;
    char shown [64];
    if (s_is_null (node) || !s_get_string (ctx, node, path, &text))
        return;
    int mode = s_choice (modes, text);
    if (mode < 0)
        s_at (ctx, node, "%s: must be one of: required, none; got '%s'", path,
              s_show (text, shown, sizeof shown));
    else
        ((mesh_action_spec_t *) base)->approval_required = mode == 1;
}

//  "N/WINDOW": N in 1..1000000, WINDOW digits and a unit s, m, h or d, at most 31 days.
//  0 and *COUNT_P, *WINDOW_S_P set, or -1.
static int
s_parse_rate (const char *text, int *count_p, int *window_s_p)
{
    size_t digits = strspn (text, "0123456789");
    if (digits == 0 || digits > 7 || text [0] == '0' || text [digits] != '/')
        return -1;
    long count = strtol (text, NULL, 10);
    const char *window = text + digits + 1;
    digits = strspn (window, "0123456789");
    if (digits == 0 || digits > 7 || window [0] == '0' || !window [digits] || window [digits + 1])
        return -1;
    long scale = window [digits] == 's' ? 1 : window [digits] == 'm' ? 60
               : window [digits] == 'h' ? 3600 : window [digits] == 'd' ? 86400 : 0;
    long seconds = strtol (window, NULL, 10) * scale;
    if (count < 1 || count > 1000000 || seconds < 1 || seconds > 31L * 86400)
        return -1;
    *count_p = (int) count;
    *window_s_p = (int) seconds;
    return 0;
}

static void
s_rate (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_action_spec_t *action = base;
    const char *text;
    char shown [64];
    if (s_is_null (node) || !s_get_string (ctx, node, path, &text))
        return;                         //  null: no limit
    if (s_parse_rate (text, &action->rate_count, &action->rate_window_s))
        s_at (ctx, node, "%s: expected N/WINDOW, N in 1..1000000 and WINDOW a duration such as "
              "30s, 10m, 1h or 1d (at most 31d), e.g. 3/10m; got '%s'", path,
              s_show (text, shown, sizeof shown));
}

//  Every key of an action, and the kinds it belongs to (s_action_scope): a key of another
//  kind is an error, never silently ignored.
enum { A_KIND, A_TOPIC, A_DESCRIPTION, A_PARAMS, A_LOOP, A_BUDGET, A_PROGRAM, A_ARGV, A_ENV,
       A_STDIN, A_CWD, A_USER, A_GROUP, A_LIMITS, A_TIMEOUT, A_KILL_AFTER, A_CAPTURE, A_URL,
       A_ALLOW_HTTP, A_ALLOW_PRIVATE, A_HEADERS, A_SECRET_FILE, A_SECRET_CREDENTIAL, A_CONNECT,
       A_RETRY, A_EXCERPT, A_APPROVAL, A_APPROVAL_TIMEOUT, A_RATE, A_COUNT_ };
static const s_field_t s_action_fields [] = {
    [A_KIND] = { .key = "kind", .type = F_ENUM, .required = true,
                 .offset = offsetof (mesh_action_spec_t, kind), .choices = s_action_kinds },
    [A_TOPIC] = S_STR ("topic", mesh_action_spec_t, topic, s_check_write_topic),
    [A_DESCRIPTION] = S_STR ("description", mesh_action_spec_t, description, s_check_text),
    [A_PARAMS] = { .key = "params", .type = F_CALL, .handler = s_params },
    [A_LOOP] = { .key = "allow_input_topic", .type = F_BOOL,
                 .offset = offsetof (mesh_action_spec_t, allow_input_topic) },
    [A_BUDGET] = { .key = "budget", .type = F_CALL, .handler = s_action_budget },
    [A_PROGRAM] = { .key = "program", .type = F_CALL, .handler = s_program },
    [A_ARGV] = { .key = "argv", .type = F_LIST, .check = s_check_argv_item,
                 .offset = offsetof (mesh_action_spec_t, exec.argv),
                 .count_offset = offsetof (mesh_action_spec_t, exec.argc) },
    [A_ENV] = { .key = "env", .type = F_LIST, .check = s_check_env, .unique = true,
                .offset = offsetof (mesh_action_spec_t, exec.env),
                .count_offset = offsetof (mesh_action_spec_t, exec.env_count) },
    [A_STDIN] = { .key = "stdin", .type = F_CALL, .handler = s_stdin },
    [A_CWD] = { .key = "cwd", .type = F_CALL, .handler = s_cwd },
    [A_USER] = S_STR ("user", mesh_action_spec_t, exec.user, s_check_account),
    [A_GROUP] = S_STR ("group", mesh_action_spec_t, exec.group, s_check_account),
    [A_LIMITS] = { .key = "limits", .type = F_SECTION, .sub = s_exec_limits_fields },
    //  exec's range; a webhook's is narrower (s_action_check)
    [A_TIMEOUT] = S_NUM ("timeout_ms", mesh_action_spec_t, exec.timeout_ms, F_INT,
                         100, 86400000),
    [A_KILL_AFTER] = S_NUM ("kill_after_ms", mesh_action_spec_t, exec.kill_after_ms, F_INT,
                            100, 600000),
    [A_CAPTURE] = S_NUM ("capture_bytes", mesh_action_spec_t, exec.capture_bytes, F_SIZE,
                         0, 16777216),
    [A_URL] = { .key = "url", .type = F_STRING, .no_echo = true,
                .offset = offsetof (mesh_action_spec_t, webhook.url), .check = NULL },
    [A_ALLOW_HTTP] = { .key = "allow_http", .type = F_BOOL,
                       .offset = offsetof (mesh_action_spec_t, webhook.allow_http) },
    [A_ALLOW_PRIVATE] = { .key = "allow_private", .type = F_BOOL,
                          .offset = offsetof (mesh_action_spec_t, webhook.allow_private) },
    [A_HEADERS] = { .key = "headers", .type = F_CALL, .handler = s_headers },
    [A_SECRET_FILE] = { .key = "secret_file", .type = F_CALL, .handler = s_secret_file },
    [A_SECRET_CREDENTIAL] = S_STR ("secret_credential", mesh_action_spec_t,
                                   webhook.secret_credential, s_check_credential_name),
    [A_CONNECT] = S_NUM ("connect_timeout_ms", mesh_action_spec_t, webhook.connect_timeout_ms,
                         F_INT, 100, 600000),
    [A_RETRY] = { .key = "retry", .type = F_SECTION, .sub = s_webhook_retry_fields },
    [A_EXCERPT] = S_NUM ("excerpt_bytes", mesh_action_spec_t, webhook.excerpt_bytes, F_SIZE,
                         0, 65536),
    [A_APPROVAL] = { .key = "approval", .type = F_CALL, .handler = s_approval },
    [A_APPROVAL_TIMEOUT] = S_NUM ("approval_timeout_s", mesh_action_spec_t, approval_timeout_s,
                                  F_INT, 1, 2592000),
    [A_RATE] = { .key = "rate", .type = F_CALL, .handler = s_rate },
    { NULL }
};
_Static_assert (sizeof s_action_fields / sizeof s_action_fields [0] == A_COUNT_ + 1,
                "s_action_fields has an entry for every A_ key");

#define S_K(kind)   (1u << (kind))
#define S_K_ALL     (S_K (MESH_ACTION_LOG) | S_K (MESH_ACTION_KAFKA) | S_K (MESH_ACTION_EXEC) \
                     | S_K (MESH_ACTION_WEBHOOK))
//  Written out for every key, so that a new key has to be placed here (a zero would
//  belong to no kind: see the assertion in s_action_check).
static const unsigned s_action_scope [A_COUNT_] = {
    [A_KIND] = S_K_ALL,                     [A_TOPIC] = S_K (MESH_ACTION_KAFKA),
    [A_DESCRIPTION] = S_K_ALL,              [A_PARAMS] = S_K_ALL,
    [A_LOOP] = S_K (MESH_ACTION_KAFKA),     [A_BUDGET] = S_K_ALL,
    [A_PROGRAM] = S_K (MESH_ACTION_EXEC),   [A_ARGV] = S_K (MESH_ACTION_EXEC),
    [A_ENV] = S_K (MESH_ACTION_EXEC),       [A_STDIN] = S_K (MESH_ACTION_EXEC),
    [A_CWD] = S_K (MESH_ACTION_EXEC),       [A_USER] = S_K (MESH_ACTION_EXEC),
    [A_GROUP] = S_K (MESH_ACTION_EXEC),     [A_LIMITS] = S_K (MESH_ACTION_EXEC),
    [A_TIMEOUT] = S_K (MESH_ACTION_EXEC) | S_K (MESH_ACTION_WEBHOOK),
    [A_KILL_AFTER] = S_K (MESH_ACTION_EXEC), [A_CAPTURE] = S_K (MESH_ACTION_EXEC),
    [A_URL] = S_K (MESH_ACTION_WEBHOOK),    [A_ALLOW_HTTP] = S_K (MESH_ACTION_WEBHOOK),
    [A_ALLOW_PRIVATE] = S_K (MESH_ACTION_WEBHOOK), [A_HEADERS] = S_K (MESH_ACTION_WEBHOOK),
    [A_SECRET_FILE] = S_K (MESH_ACTION_WEBHOOK),
    [A_SECRET_CREDENTIAL] = S_K (MESH_ACTION_WEBHOOK),
    [A_CONNECT] = S_K (MESH_ACTION_WEBHOOK), [A_RETRY] = S_K (MESH_ACTION_WEBHOOK),
    [A_EXCERPT] = S_K (MESH_ACTION_WEBHOOK), [A_APPROVAL] = S_K_ALL,
    [A_APPROVAL_TIMEOUT] = S_K_ALL,         [A_RATE] = S_K_ALL,
};

//  The defaults of every kind's keys (docs/configuration.md); s_action_check clears those
//  of the kinds the action is not.
static void
s_action_defaults (mesh_action_spec_t *action)
{
    action->kind = MESH_ACTION_LOG;
    action->exec = (mesh_action_exec_t) {
        .cpu_s = 10, .as_bytes = 1L << 30, .nofile = 64, .nproc = 256,
        .timeout_ms = 30000, .kill_after_ms = 5000, .capture_bytes = 65536,
    };
    action->webhook = (mesh_action_webhook_t) {
        .timeout_ms = 10000, .connect_timeout_ms = 3000, .attempts = 3,
        .retry_base_ms = 500, .retry_max_ms = 10000, .excerpt_bytes = 1024,
    };
    action->approval_timeout_s = 3600;
}

static void
s_exec_free (mesh_action_exec_t *exec)
{
    free (exec->program);
    s_strv_free (&exec->argv, exec->argc);
    s_strv_free (&exec->env, exec->env_count);
    free (exec->cwd);
    free (exec->user);
    free (exec->group);
    memset (exec, 0, sizeof *exec);
}

static void
s_webhook_free (mesh_action_webhook_t *hook)
{
    free (hook->url);
    s_strv_free (&hook->headers, hook->header_count);
    free (hook->secret_file);
    free (hook->secret_credential);
    memset (hook, 0, sizeof *hook);
}

static const char *
s_param_name_at (const void *array, size_t i)
{
    return ((const mesh_param_spec_t *) array) [i].name;
}

//  argv: at most 64 elements; in each, "{name}" must name a required param of the action
//  (an argument cannot be built without its value), "{{" and "}}" are literal braces, and
//  any other brace is an error.
static void
s_argv_check (s_ctx_t *ctx, const mesh_action_spec_t *action, s_node_t *argv, const char *path)
{
    char item_path [S_PATH_MAX], shown [64], declared [256];
    if (!argv || argv->kind != S_SEQUENCE)
        return;
    if (argv->count > S_ARGV_MAX)
        s_at (ctx, argv, "%s: at most %d arguments after the program, got %zu", path, S_ARGV_MAX,
              argv->count);
    for (size_t i = 0; i < argv->count; i++) {
        s_node_t *item = argv->kids [i];
        if (item->kind != S_SCALAR || s_is_null (item) || strlen (item->text) != item->length)
            continue;                   //  reported by s_list
        s_index (item_path, path, i);
        const char *p = item->text;
        while (*p) {
            if ((p [0] == '{' && p [1] == '{') || (p [0] == '}' && p [1] == '}')) {
                p += 2;
                continue;
            }
            if (*p == '}') {
                s_at (ctx, item, "%s: a '}' that closes no placeholder; write }} for a literal "
                      "brace", item_path);
                break;
            }
            if (*p != '{') {
                p++;
                continue;
            }
            const char *name = p + 1;
            size_t length = strspn (name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                          "0123456789_");
            if (length == 0 || length > 64 || name [length] != '}'
            ||  isdigit ((unsigned char) name [0])) {
                s_at (ctx, item, "%s: '{' must open a placeholder, {param} with a param's name; "
                      "write {{ for a literal brace", item_path);
                break;
            }
            const mesh_param_spec_t *param = NULL;
            for (size_t j = 0; j < action->param_count && !param; j++)
                if (action->params [j].name && strlen (action->params [j].name) == length
                &&  !strncmp (action->params [j].name, name, length))
                    param = &action->params [j];
            if (!param) {
                s_names_text (declared, sizeof declared, "declared: ", "it declares none",
                              action->param_count, s_param_name_at, action->params);
                s_at (ctx, item, "%s: {%.*s} names no param of this action (%s)", item_path,
                      (int) length, s_show (name, shown, sizeof shown), declared);
            }
            else
            if (!param->required)
                s_at (ctx, item, "%s: {%s} names an optional param (required: false), and an "
                      "argument cannot be built without its value; make it required", item_path,
                      param->name);
            p = name + length + 1;
        }
    }
}

//  env: each NAME once (the list's unique flag catches identical entries only); the
//  default when it is not written.
static void
s_env_check (s_ctx_t *ctx, mesh_action_exec_t *exec, s_node_t *env, const char *path)
{
    if (!s_given (env)) {
        s_strv_free (&exec->env, exec->env_count);
        exec->env_count = 0;
        exec->env = s_calloc (ctx, 2, sizeof *exec->env);
        if (exec->env) {
            exec->env [0] = s_strdup (ctx, MESH_EXEC_PATH_DEFAULT);
            exec->env [1] = s_strdup (ctx, MESH_EXEC_LANG_DEFAULT);
            exec->env_count = exec->env [0] && exec->env [1] ? 2 : 0;
            if (!exec->env_count) {
                free (exec->env [0]);
                free (exec->env [1]);
            }
        }
        return;
    }
    if (env->kind != S_SEQUENCE)
        return;
    char item_path [S_PATH_MAX];
    for (size_t i = 0; i < env->count; i++) {
        s_node_t *item = env->kids [i];
        if (item->kind != S_SCALAR || !item->text || s_check_env (item->text))
            continue;
        size_t name = strcspn (item->text, "=");
        for (size_t j = 0; j < i; j++) {
            s_node_t *earlier = env->kids [j];
            if (earlier->kind != S_SCALAR || !earlier->text || s_check_env (earlier->text)
            ||  strcspn (earlier->text, "=") != name || strncmp (earlier->text, item->text, name)
            ||  !strcmp (earlier->text, item->text))
                continue;               //  identical entries: reported by s_list
            s_index (item_path, path, i);
            s_at (ctx, item, "%s: %.*s is already set (at %d:%d); each variable once", item_path,
                  (int) name, item->text, earlier->line, earlier->col);
            break;
        }
    }
}

static void
s_webhook_check (s_ctx_t *ctx, mesh_action_spec_t *action, s_node_t *node, s_node_t **seen,
                 const char *path)
{
    mesh_action_webhook_t *hook = &action->webhook;
    char host [256];
    //  timeout_ms was read into exec's place, with exec's wider range.
    hook->timeout_ms = s_given (seen [A_TIMEOUT]) ? action->exec.timeout_ms : 10000;
    if (hook->timeout_ms > 600000)
        s_at (ctx, seen [A_TIMEOUT], "%s.timeout_ms: must be in [100,600000] for kind webhook, "
              "got %d", path, hook->timeout_ms);
    if (!s_given (seen [A_URL]))
        s_at (ctx, node, "%s: kind webhook requires 'url' (where the signed JSON body is POSTed)",
              path);
    if (hook->url) {
        const char *rest = NULL;
        const char *why = s_check_url_common (hook->url, &rest);
        if (why)
            s_at (ctx, seen [A_URL], "%s.url: expected %s", path, why);
        else
        if (strchr (hook->url, '#'))
            s_at (ctx, seen [A_URL], "%s.url: expected a URL without a fragment (it is never "
                  "sent)", path);
        else
        if (!strncmp (hook->url, "http://", 7) && !hook->allow_http)
            s_at (ctx, seen [A_URL], "%s.url: expected https:// (over http the body and its "
                  "signature cross the network in clear text); set allow_http: true for a "
                  "receiver on a network you trust", path);
        else
        if (s_metadata_host (hook->url, host, sizeof host))
            s_at (ctx, seen [A_URL], "%s.url: host %s is a link-local or cloud-metadata "
                  "address; a webhook is never sent there (a request can hand out the host's "
                  "cloud credentials)", path, host);
        else
        if (!hook->allow_private && s_private_host (hook->url, host, sizeof host))
            s_at (ctx, seen [A_URL], "%s.url: host %s is a loopback or private address; set "
                  "allow_private: true if the receiver really is there", path, host);
    }
    bool file = s_given (seen [A_SECRET_FILE]), credential = s_given (seen [A_SECRET_CREDENTIAL]);
    if (file && credential)
        s_at (ctx, seen [A_SECRET_CREDENTIAL], "%s: exactly one of secret_file and "
              "secret_credential, got both", path);
    if (!file && !credential)
        s_at (ctx, node, "%s: kind webhook requires secret_file or secret_credential (the "
              "HMAC-SHA256 key the body is signed with)", path);
    if (hook->connect_timeout_ms > hook->timeout_ms)
        s_at (ctx, s_either (seen [A_CONNECT], seen [A_TIMEOUT], node),
              "%s.connect_timeout_ms: must not exceed timeout_ms (%d), got %d", path,
              hook->timeout_ms, hook->connect_timeout_ms);
    if (hook->retry_base_ms > hook->retry_max_ms) {
        s_node_t *retry = seen [A_RETRY];
        s_at (ctx, s_either (s_find (retry, "base_ms"), s_find (retry, "max_ms"), node),
              "%s.retry.base_ms: must be at most max_ms (%d), got %d", path, hook->retry_max_ms,
              hook->retry_base_ms);
    }
}

//  What involves more than one key of an action, once its kind is known.
static void
s_action_check (s_ctx_t *ctx, mesh_action_spec_t *action, s_node_t *node, s_node_t **seen,
                const char *path)
{
    const char *kind = s_action_kinds [action->kind];
    char kinds [64], sub [S_PATH_MAX];
    for (int i = 0; i < A_COUNT_; i++) {
        unsigned scope = s_action_scope [i];
        assert (scope && !(scope & ~S_K_ALL));
        if (!seen [i] || (scope & S_K (action->kind)))
            continue;
        kinds [0] = 0;
        for (int k = 0; s_action_kinds [k]; k++)
            if (scope & S_K (k)) {
                size_t used = strlen (kinds);
                snprintf (kinds + used, sizeof kinds - used, "%s%s", used ? " or " : "",
                          s_action_kinds [k]);
            }
        s_at (ctx, seen [i], "%s.%s: only for kind %s (this action is %s)", path,
              s_action_fields [i].key, kinds, kind);
    }
    if (action->kind == MESH_ACTION_KAFKA && !s_given (seen [A_TOPIC]))
        s_at (ctx, node, "%s: kind kafka requires 'topic' (where the action is produced)", path);
    if (action->kind == MESH_ACTION_EXEC) {
        if (!s_given (seen [A_PROGRAM]))
            s_at (ctx, node, "%s: kind exec requires 'program' (the absolute path of what runs; "
                  "never looked up in PATH, never through a shell)", path);
        s_join (sub, path, "argv");
        s_argv_check (ctx, action, seen [A_ARGV], sub);
        s_join (sub, path, "env");
        s_env_check (ctx, &action->exec, seen [A_ENV], sub);
        if (!action->exec.cwd)
            action->exec.cwd = s_strdup (ctx, "/");
        if (s_given (seen [A_GROUP]) && !s_given (seen [A_USER]))
            s_at (ctx, seen [A_GROUP], "%s.group: only allowed with user (the program switches "
                  "user and group together); add user, or remove group", path);
    }
    if (action->kind == MESH_ACTION_WEBHOOK)
        s_webhook_check (ctx, action, node, seen, path);
    else
        s_webhook_free (&action->webhook);
    if (action->kind != MESH_ACTION_EXEC)
        s_exec_free (&action->exec);    //  after the webhook took its timeout_ms
    //  allow_dash matters only where a value becomes an argument.
    s_node_t *params = seen [A_PARAMS];
    for (size_t i = 0; action->kind != MESH_ACTION_EXEC && i < action->param_count; i++) {
        s_node_t *dash = s_find (s_find (params, action->params [i].name), "allow_dash");
        if (dash)
            s_at (ctx, dash, "%s.params.%s.allow_dash: only for kind exec (this action is %s)",
                  path, action->params [i].name, kind);
    }
    if (seen [A_APPROVAL_TIMEOUT] && !action->approval_required)
        s_at (ctx, seen [A_APPROVAL_TIMEOUT], "%s.approval_timeout_s: only with approval: "
              "required", path);
    if (action->approval_required && action->kind == MESH_ACTION_KAFKA)
        s_at (ctx, seen [A_APPROVAL], "%s.approval: not for kind kafka (meshd carries out an "
              "approved action itself and has no producer); use an exec, webhook or log action",
              path);
    if (action->exec.as_bytes > 0 && action->exec.as_bytes < 16777216)
        s_at (ctx, s_find (seen [A_LIMITS], "as_bytes"), "%s.limits.as_bytes: must be 0 (no "
              "limit) or in [16777216,68719476736], got %ld", path, action->exec.as_bytes);
}

static void
s_actions (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    s_node_t **keys, **values;
    ctx->actions = node;
    size_t count = s_entries (ctx, node, path, s_check_name, &keys, &values);
    cfg->actions = s_calloc (ctx, count, sizeof *cfg->actions);
    for (size_t i = 0; cfg->actions && i < count; i++) {
        mesh_action_spec_t *action = &cfg->actions [cfg->action_count++];
        action->name = s_strdup (ctx, keys [i]->text);
        s_action_defaults (action);
        char sub [S_PATH_MAX];
        s_join (sub, path, keys [i]->text);
        s_node_t *seen [S_MAX_FIELDS];
        s_walk (ctx, values [i], sub, s_action_fields, action, seen);
        if (s_given (seen [A_KIND]))
            s_action_check (ctx, action, values [i], seen, sub);
    }
    free (keys);
    free (values);
}

//  --------------------------------------------------------------------------
//  agents:

static void
s_mode (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    static const char *const modes [] = { "act", "observe", NULL };
    mesh_agent_config_t *agent = base;
    const char *text;
    char shown [64];
    if (s_is_null (node))
        return;
    if (!s_get_string (ctx, node, path, &text))
        return;
    int mode = s_choice (modes, text);
    if (mode < 0)
        s_at (ctx, node, "%s: must be one of: act, observe; got '%s'", path,
              s_show (text, shown, sizeof shown));
    else
        agent->observe = mode == 1;
}

static const s_field_t s_agent_map_fields [] = {
    { .key = "key", .type = F_LIST, .required = true,
      .offset = offsetof (mesh_agent_config_t, key_fields),
      .count_offset = offsetof (mesh_agent_config_t, key_field_count), .check = s_check_line,
      .unique = true, .min_items = 1 },
    S_STR ("value", mesh_agent_config_t, value_field, s_check_line),
    S_STR ("time", mesh_agent_config_t, time_field, s_check_line),
    { NULL }
};

static const char *const s_detector_kinds [] = { "ewma", "mad", "cusum", "seasonal", "knn",
                                                 "ensemble", "context", "bocpd", NULL };

#define S_DET mesh_agent_config_t
static const s_field_t s_detector_mad_fields [] = {
    S_NUM ("window", S_DET, detector.mad.window, F_INT, 5, 1023),
    { NULL }
};

static const s_field_t s_detector_cusum_fields [] = {
    S_NUM ("k", S_DET, detector.cusum.k, F_DOUBLE, 0, 10),
    { .key = "h", .type = F_DOUBLE, .offset = offsetof (S_DET, detector.cusum.h),
      .lo = 0, .lo_open = true, .hi = 1000 },
    { NULL }
};

static const s_field_t s_detector_seasonal_fields [] = {
    S_NUM ("period_s", S_DET, detector.seasonal.period_s, F_INT, 2, 31622400),
    S_NUM ("period", S_DET, detector.seasonal.period, F_INT, 0, 1000000),
    S_NUM ("bins", S_DET, detector.seasonal.bins, F_INT, 2, 1024),
    { .key = "alpha", .type = F_DOUBLE, .offset = offsetof (S_DET, detector.seasonal.alpha),
      .lo = 0, .lo_open = true, .hi = 1 },
    { NULL }
};

static const s_field_t s_detector_knn_fields [] = {
    S_NUM ("window", S_DET, detector.knn.window, F_INT, 2, 64),
    S_NUM ("memory", S_DET, detector.knn.memory, F_INT, 8, 4096),
    S_NUM ("k", S_DET, detector.knn.k, F_INT, 1, 4096),
    { NULL }
};

static const s_field_t s_detector_context_fields [] = {
    S_NUM ("levels", S_DET, detector.context.levels, F_INT, 2, 64),
    S_NUM ("length", S_DET, detector.context.length, F_INT, 1, 8),
    S_NUM ("slots", S_DET, detector.context.slots, F_INT, 16, 176),
    { NULL }
};

static const s_field_t s_detector_bocpd_fields [] = {
    { .key = "hazard", .type = F_DOUBLE, .offset = offsetof (S_DET, detector.bocpd.hazard),
      .lo = 0, .lo_open = true, .hi = 0.5 },
    S_NUM ("hypotheses", S_DET, detector.bocpd.hypotheses, F_INT, 2, 24),
    { NULL }
};

enum { DT_KIND, DT_ALPHA, DT_WARMUP, DT_THRESHOLD, DT_MAX_SERIES, DT_HOLDOFF, DT_MAD, DT_CUSUM,
       DT_SEASONAL, DT_KNN, DT_CONTEXT, DT_BOCPD };
static const s_field_t s_detector_fields [] = {
    [DT_KIND] = { .key = "kind", .type = F_STRING, .offset = offsetof (S_DET, detector.kind),
                  .choices = s_detector_kinds },
    [DT_ALPHA] = { .key = "alpha", .type = F_DOUBLE, .offset = offsetof (S_DET, detector.alpha),
                   .lo = 0, .lo_open = true, .hi = 1 },
    [DT_WARMUP] = S_NUM ("warmup", S_DET, detector.warmup, F_INT, 2, 1000000),
    [DT_THRESHOLD] = S_NUM ("threshold", S_DET, detector.threshold, F_DOUBLE, 0, 1),
    [DT_MAX_SERIES] = S_NUM ("max_series", S_DET, detector.max_series, F_SIZE, 1, 100000000),
    [DT_HOLDOFF] = S_NUM ("holdoff", S_DET, detector.holdoff, F_INT, 0, 1000000),
    [DT_MAD] = { .key = "mad", .type = F_SECTION, .sub = s_detector_mad_fields },
    [DT_CUSUM] = { .key = "cusum", .type = F_SECTION, .sub = s_detector_cusum_fields },
    [DT_SEASONAL] = { .key = "seasonal", .type = F_SECTION, .sub = s_detector_seasonal_fields },
    [DT_KNN] = { .key = "knn", .type = F_SECTION, .sub = s_detector_knn_fields },
    [DT_CONTEXT] = { .key = "context", .type = F_SECTION, .sub = s_detector_context_fields },
    [DT_BOCPD] = { .key = "bocpd", .type = F_SECTION, .sub = s_detector_bocpd_fields },
    { NULL }
};
#undef S_DET

//  incident.silences: a list of {matchers, starts, ends, comment}.
static void
s_silence_time (s_ctx_t *ctx, s_node_t *node, const char *path, int64_t *ms_p)
{
    const char *text;
    char shown [64];
    if (!s_get_string (ctx, node, path, &text))
        return;
    if (mesh_silence_parse_time (text, ms_p) != 0)
        s_at (ctx, node, "%s: expected an RFC 3339 time such as 2024-05-01T10:00:00Z, got '%s'",
              path, s_show (text, shown, sizeof shown));
}

static void
s_silence_starts (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_silence_time (ctx, node, path, &((mesh_silence_config_t *) base)->starts_ms);
}

static void
s_silence_ends (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_silence_time (ctx, node, path, &((mesh_silence_config_t *) base)->ends_ms);
}

enum { SI_MATCHERS, SI_STARTS, SI_ENDS, SI_COMMENT };
static const s_field_t s_silence_fields [] = {
    [SI_MATCHERS] = { .key = "matchers", .type = F_LIST, .required = true,
                      .offset = offsetof (mesh_silence_config_t, matchers),
                      .count_offset = offsetof (mesh_silence_config_t, matcher_count),
                      .check = s_check_line, .unique = true, .min_items = 1 },
    [SI_STARTS] = { .key = "starts", .type = F_CALL, .handler = s_silence_starts },
    [SI_ENDS] = { .key = "ends", .type = F_CALL, .handler = s_silence_ends },
    [SI_COMMENT] = S_STR ("comment", mesh_silence_config_t, comment, s_check_text),
    { NULL }
};

static void
s_silences (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_agent_config_t *agent = base;
    char what [96], sub [S_PATH_MAX], why [256];
    if (s_is_null (node))
        return;
    if (node->kind != S_SEQUENCE) {
        s_at (ctx, node, "%s: expected a sequence of silences (\"- matchers: [...]\"), got %s",
              path, s_what (node, what, sizeof what));
        return;
    }
    agent->incident.silences = s_calloc (ctx, node->count, sizeof *agent->incident.silences);
    for (size_t i = 0; agent->incident.silences && i < node->count; i++) {
        mesh_incident_config_t *incident = &agent->incident;
        mesh_silence_config_t *silence = &incident->silences [incident->silence_count++];
        s_index (sub, path, i);
        s_node_t *seen [S_MAX_FIELDS];
        s_walk (ctx, node->kids [i], sub, s_silence_fields, silence, seen);
        s_node_t *list = seen [SI_MATCHERS];
        bool all_empty = silence->matcher_count > 0;
        for (size_t j = 0; list && list->kind == S_SEQUENCE && j < list->count; j++) {
            s_node_t *item = list->kids [j];
            if (!s_given (item) || item->kind != S_SCALAR)
                continue;
            if (mesh_silence_matcher_check (item->text, why, sizeof why) != 0) {
                s_at (ctx, item, "%s.matchers[%zu]: %s", sub, j, why);
                all_empty = false;      //  reported already
            }
            else
            if (!mesh_silence_matcher_matches_empty (item->text))
                all_empty = false;
        }
        if (all_empty)
            s_at (ctx, list, "%s.matchers: every matcher matches an empty field, so the silence "
                  "would mute everything; add one that names a value (e.g. host=web-1)", sub);
        if (silence->starts_ms && silence->ends_ms && silence->ends_ms <= silence->starts_ms)
            s_at (ctx, seen [SI_ENDS], "%s.ends: must be after starts", sub);
    }
}

enum { IN_GROUP_BY, IN_GROUP_WAIT, IN_GROUP_INTERVAL, IN_REPEAT, IN_COOLDOWN, IN_MIN_POINTS,
       IN_SPAN, IN_RESOLVE, IN_MAX_GROUPS, IN_PERSIST, IN_SILENCES };
#define S_INC mesh_agent_config_t
static const s_field_t s_incident_fields [] = {
    [IN_GROUP_BY] = { .key = "group_by", .type = F_LIST,
                      .offset = offsetof (S_INC, incident.group_by),
                      .count_offset = offsetof (S_INC, incident.group_by_count),
                      .check = s_check_line, .unique = true },
    [IN_GROUP_WAIT] = S_NUM ("group_wait_s", S_INC, incident.group_wait_s, F_INT, 0, 86400),
    [IN_GROUP_INTERVAL] = S_NUM ("group_interval_s", S_INC, incident.group_interval_s, F_INT,
                                 0, 2592000),
    [IN_REPEAT] = S_NUM ("repeat_interval_s", S_INC, incident.repeat_interval_s, F_INT,
                         0, 2592000),
    [IN_COOLDOWN] = S_NUM ("cooldown_s", S_INC, incident.cooldown_s, F_INT, 0, 2592000),
    [IN_MIN_POINTS] = S_NUM ("min_points", S_INC, incident.min_points, F_INT, 1, 1000),
    [IN_SPAN] = S_NUM ("min_points_span_s", S_INC, incident.min_points_span_s, F_INT,
                       1, 2592000),
    [IN_RESOLVE] = S_NUM ("resolve_s", S_INC, incident.resolve_s, F_INT, 1, 2592000),
    [IN_MAX_GROUPS] = S_NUM ("max_groups", S_INC, incident.max_groups, F_SIZE, 1, 100000000),
    [IN_PERSIST] = S_NUM ("persist_interval_s", S_INC, incident.persist_interval_s, F_INT,
                          1, 3600),
    [IN_SILENCES] = { .key = "silences", .type = F_CALL, .handler = s_silences },
    { NULL }
};
#undef S_INC

#define S_EV mesh_agent_config_t
static const s_field_t s_event_fields [] = {
    S_NUM ("max_bytes", S_EV, events.max_bytes, F_SIZE, 64, 67108864),
    S_NUM ("max_depth", S_EV, events.max_depth, F_INT, 2, 2048),
    S_NUM ("max_keys", S_EV, events.max_keys, F_INT, 1, 1000000),
    S_NUM ("max_future_skew_s", S_EV, events.max_future_skew_s, F_INT, 0, 86400),
    S_NUM ("max_event_age_s", S_EV, events.max_event_age_s, F_INT, 0, 31536000),
    S_NUM ("dead_letter_timeout_ms", S_EV, events.dead_letter_timeout_ms, F_INT, 100, 300000),
    { NULL }
};
#undef S_EV

//  reason.priority and reason.high_priority_when.
static void
s_priority (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    static const char *const kinds [] = { "normal", "high", NULL };
    if (!s_given (node) || node->kind != S_SCALAR || s_choice (kinds, node->text) < 0) {
        s_at (ctx, node, "%s: must be one of: normal, high", path);
        return;
    }
    ((mesh_agent_config_t *) base)->reason.high_priority = !strcmp (node->text, "high");
}

static __thread char s_matcher_why [256];
static const char *
s_check_matcher (const char *text)
{
    return mesh_silence_matcher_check (text, s_matcher_why, sizeof s_matcher_why) == 0
               ? NULL : s_matcher_why;
}

static const s_field_t s_high_priority_fields [] = {
    { .key = "match", .type = F_LIST, .check = s_check_matcher, .min_items = 1,
      .offset = offsetof (mesh_agent_config_t, reason.high_priority_match),
      .count_offset = offsetof (mesh_agent_config_t, reason.high_priority_match_count) },
    S_NUM ("min_score", mesh_agent_config_t, reason.high_priority_min_score, F_DOUBLE, 0, 1),
    { NULL }
};

//  Backends in one agent's cascade (reason.backends).
#define S_CASCADE_MAX   8

//  reason.backend or reason.backends: exactly one is given (s_agent_backends checks it,
//  as neither is required alone).
enum { R_BACKEND, R_STEPS, R_TOKENS, R_CAP, R_BUDGET, R_WINDOW, R_QUEUE, R_WORKERS, R_OVERFLOW,
       R_BUDGET_BLOCK, R_PRIORITY, R_HIGH_WHEN, R_BACKENDS, R_ESCALATE, R_DEADLINE };
static const char *const s_overflow_kinds [] = { "pause", "shed", NULL };
static const s_field_t s_reason_fields [] = {
    [R_BACKEND] = { .key = "backend", .type = F_STRING,
                    .offset = offsetof (mesh_agent_config_t, reason.backend) },
    [R_STEPS] = S_NUM ("max_steps", mesh_agent_config_t, reason.max_steps, F_INT, 1, 20),
    [R_TOKENS] = S_NUM ("max_tokens", mesh_agent_config_t, reason.max_tokens, F_INT, 1, 1000000),
    [R_CAP] = S_NUM ("incident_token_cap", mesh_agent_config_t, reason.incident_token_cap,
                     F_INT, 1, 10000000),
    [R_BUDGET] = S_NUM ("budget_tokens", mesh_agent_config_t, reason.budget_tokens, F_LONG,
                        1, 1000000000),
    [R_WINDOW] = S_NUM ("budget_window_s", mesh_agent_config_t, reason.budget_window_s, F_INT,
                        1, 31 * 86400),
    [R_QUEUE] = S_NUM ("queue_size", mesh_agent_config_t, reason.queue_size, F_INT, 1, 1000000),
    [R_WORKERS] = S_NUM ("workers", mesh_agent_config_t, reason.workers, F_INT, 1, 16),
    [R_OVERFLOW] = { .key = "overflow", .type = F_STRING,
                     .offset = offsetof (mesh_agent_config_t, reason.overflow),
                     .choices = s_overflow_kinds },
    [R_BUDGET_BLOCK] = { .key = "budget", .type = F_CALL, .handler = s_reason_budget },
    [R_PRIORITY] = { .key = "priority", .type = F_CALL, .handler = s_priority },
    [R_HIGH_WHEN] = { .key = "high_priority_when", .type = F_SECTION,
                      .sub = s_high_priority_fields },
    [R_BACKENDS] = { .key = "backends", .type = F_LIST, .unique = true, .min_items = 1,
                     .offset = offsetof (mesh_agent_config_t, reason.backends),
                     .count_offset = offsetof (mesh_agent_config_t, reason.backend_count) },
    [R_ESCALATE] = S_NUM ("escalate_below", mesh_agent_config_t, reason.escalate_below,
                          F_DOUBLE, 0, 1),
    [R_DEADLINE] = S_NUM ("deadline_ms", mesh_agent_config_t, reason.deadline_ms, F_INT,
                          100, 3600000),
    { NULL }
};

enum { G_NAME, G_TOPICS, G_GROUP, G_MODE, G_FIELDS, G_DETECTOR, G_INCIDENT, G_REASON, G_ACTIONS,
       G_FALLBACK, G_RULES, G_REPLICAS, G_DLQ, G_EVENTS };
static const s_field_t s_agent_fields [] = {
    [G_NAME] = { .key = "name", .type = F_STRING, .required = true,
                 .offset = offsetof (mesh_agent_config_t, name), .check = s_check_name },
    [G_TOPICS] = { .key = "topics", .type = F_LIST, .required = true,
                   .offset = offsetof (mesh_agent_config_t, topics),
                   .count_offset = offsetof (mesh_agent_config_t, topic_count),
                   .check = s_check_topic, .unique = true, .min_items = 1 },
    [G_GROUP] = S_STR ("group", mesh_agent_config_t, group, s_check_line),
    [G_MODE] = { .key = "mode", .type = F_CALL, .handler = s_mode },
    [G_FIELDS] = { .key = "fields", .type = F_SECTION, .required = true,
                   .sub = s_agent_map_fields },
    [G_DETECTOR] = { .key = "detector", .type = F_SECTION, .sub = s_detector_fields },
    [G_INCIDENT] = { .key = "incident", .type = F_SECTION, .sub = s_incident_fields },
    [G_REASON] = { .key = "reason", .type = F_SECTION, .required = true,
                   .sub = s_reason_fields },
    [G_ACTIONS] = { .key = "actions", .type = F_LIST, .required = true,
                    .offset = offsetof (mesh_agent_config_t, actions),
                    .count_offset = offsetof (mesh_agent_config_t, action_count),
                    .unique = true, .min_items = 1 },
    [G_FALLBACK] = { .key = "fallback", .type = F_STRING, .required = true,
                     .offset = offsetof (mesh_agent_config_t, fallback) },
    [G_RULES] = { .key = "rules", .type = F_LIST, .offset = offsetof (mesh_agent_config_t, rules),
                  .count_offset = offsetof (mesh_agent_config_t, rule_count),
                  .check = s_check_path, .is_path = true,
                  .pos_offset = offsetof (mesh_agent_config_t, rule_pos) },
    [G_REPLICAS] = S_NUM ("replicas", mesh_agent_config_t, replicas, F_INT, 1, 64),
    [G_DLQ] = { .key = "dead_letter_topic", .type = F_STRING,
                .offset = offsetof (mesh_agent_config_t, dead_letter_topic),
                .check = s_check_write_topic },
    [G_EVENTS] = { .key = "events", .type = F_SECTION, .sub = s_event_fields },
    { NULL }
};

//  "PREFIX a, b, c" (cut if long) or NONE, for messages.
static void
s_names_text (char *buf, size_t size, const char *prefix, const char *none, size_t count,
              const char *(*name) (const void *, size_t), const void *array)
{
    int length = snprintf (buf, size, "%s", prefix);
    size_t used = (size_t) length;
    for (size_t i = 0; i < count; i++) {
        if (used + 5 >= size) {         //  a long list is cut: the message stays one line
            snprintf (buf + size - 5, 5, "...");
            break;
        }
        int length = snprintf (buf + used, size - used, "%s%s", i ? ", " : "", name (array, i));
        used = length < 0 ? size : used + (size_t) length;
    }
    if (!count)
        snprintf (buf, size, "%s", none);
}

static const char *
s_backend_name (const void *array, size_t i)
{
    return ((const mesh_backend_config_t *) array) [i].name;
}

static const char *
s_action_name (const void *array, size_t i)
{
    return ((const mesh_action_spec_t *) array) [i].name;
}

static const char *
s_string_at (const void *array, size_t i)
{
    return ((char *const *) array) [i];
}

//  An agent's backends: `backend: x` or the cascade `backends: [x, y, ...]`, exactly one of
//  them; each name declared.  Either way reason.backends is the cascade (one long for
//  `backend:`) and reason.backend its first name.
static void
s_agent_backends (s_ctx_t *ctx, const mesh_config_t *cfg, mesh_agent_config_t *agent,
                  s_node_t *reason, const char *path)
{
    char declared [512], shown [64];
    if (!reason || (reason->kind != S_MAPPING && !s_is_null (reason)))
        return;                         //  missing, or not a mapping: reported
    s_node_t *one = s_find (reason, "backend"), *list = s_find (reason, "backends");
    mesh_reason_config_t *r = &agent->reason;
    if (one && list) {
        s_at (ctx, list, "%s.reason: give either backend (one) or backends (a cascade), not "
              "both; backend: x is backends: [x]", path);
        return;
    }
    if (!one && !list) {
        s_at (ctx, reason, "%s.reason: missing required key 'backend' (the name of an entry in "
              "backends) or 'backends' (a cascade of them, in order)", path);
        return;
    }
    s_names_text (declared, sizeof declared, "declared: ", "none are declared",
                  cfg->backend_count, s_backend_name, cfg->backends);
    if (one) {
        if (s_is_null (one))
            s_at (ctx, one, "%s.reason.backend: a value is required", path);
        if (!r->backend)
            return;                     //  reported
        if (!mesh_config_backend (cfg, r->backend))
            s_at (ctx, one, "%s.reason.backend: no backend named '%s' (%s)", path,
                  s_show (r->backend, shown, sizeof shown), declared);
        r->backends = s_calloc (ctx, 1, sizeof *r->backends);
        if (r->backends && (r->backends [0] = s_strdup (ctx, r->backend)))
            r->backend_count = 1;
        return;
    }
    if (list->kind != S_SEQUENCE)
        return;                         //  reported by the list reader
    if (list->count > S_CASCADE_MAX)
        s_at (ctx, list, "%s.reason.backends: at most %d backends in a cascade, got %zu", path,
              S_CASCADE_MAX, list->count);
    for (size_t i = 0; i < list->count; i++) {
        s_node_t *item = list->kids [i];
        if (s_given (item) && item->kind == S_SCALAR && !mesh_config_backend (cfg, item->text))
            s_at (ctx, item, "%s.reason.backends[%zu]: no backend named '%s' (%s)", path, i,
                  s_show (item->text, shown, sizeof shown), declared);
    }
    if (r->backend_count)
        r->backend = s_strdup (ctx, r->backends [0]);
}

//  References from one agent to the declared backends and actions.
static void
s_agent_refs (s_ctx_t *ctx, const mesh_config_t *cfg, mesh_agent_config_t *agent,
              s_node_t **seen, const char *path)
{
    char declared [512], shown [64];
    s_agent_backends (ctx, cfg, agent, seen [G_REASON], path);
    s_node_t *escalate = s_find (seen [G_REASON], "escalate_below");
    if (s_given (escalate) && agent->reason.backend_count == 1)
        s_at (ctx, escalate, "%s.reason.escalate_below: needs a cascade: list two or more "
              "backends (backends: [small, large]); with one there is nothing to escalate to",
              path);
    s_node_t *actions = seen [G_ACTIONS];
    for (size_t i = 0; actions && actions->kind == S_SEQUENCE && i < actions->count; i++) {
        s_node_t *item = actions->kids [i];
        if (s_given (item) && item->kind == S_SCALAR && !mesh_config_action (cfg, item->text)) {
            s_names_text (declared, sizeof declared, "declared: ", "none are declared",
                          cfg->action_count, s_action_name, cfg->actions);
            s_at (ctx, item, "%s.actions[%zu]: no action named '%s' (%s)", path, i,
                  s_show (item->text, shown, sizeof shown), declared);
        }
    }
    if (agent->fallback) {
        bool listed = false;
        for (size_t i = 0; i < agent->action_count && !listed; i++)
            listed = !strcmp (agent->actions [i], agent->fallback);
        if (!listed) {
            s_names_text (declared, sizeof declared, "", "it has none", agent->action_count,
                          s_string_at, agent->actions);
            s_at (ctx, seen [G_FALLBACK], "%s.fallback: '%s' is not one of this agent's actions "
                  "(%s)", path, s_show (agent->fallback, shown, sizeof shown), declared);
        }
    }
    //  The agent's budget: a budget block, or the two keys it replaces (not both).
    s_node_t *reason_node = seen [G_REASON];
    s_node_t *block = s_find (reason_node, "budget");
    s_node_t *legacy = s_either (s_find (reason_node, "budget_tokens"),
                                 s_find (reason_node, "budget_window_s"), NULL);
    if (block && legacy)
        s_at (ctx, legacy, "%s.reason: give the agent's budget either as budget: {tokens, "
              "window_s, ...} or as budget_tokens and budget_window_s, not both", path);
    if (!block) {
        agent->reason.budget.tokens = agent->reason.budget_tokens;
        agent->reason.budget.window = MESH_WINDOW_ROLLING;
        agent->reason.budget.window_s = agent->reason.budget_window_s;
    }
    else {
        agent->reason.budget_tokens = agent->reason.budget.tokens;
        if (agent->reason.budget.window == MESH_WINDOW_ROLLING)
            agent->reason.budget_window_s = agent->reason.budget.window_s;
    }
    if (s_find (reason_node, "high_priority_when"))
        agent->reason.high_priority_when = true;
    //  Every call reserves its prompt plus max_tokens from the incident's cap.
    if (agent->reason.incident_token_cap <= agent->reason.max_tokens) {
        s_node_t *reason = seen [G_REASON];
        s_at (ctx, s_either (s_find (reason, "incident_token_cap"), s_find (reason, "max_tokens"),
                             reason ? reason : seen [G_NAME]),
              "%s.reason.incident_token_cap: must be greater than max_tokens (%d), got %d, or "
              "no call could ever be made", path, agent->reason.max_tokens,
              agent->reason.incident_token_cap);
    }
}

//  Detector keys that depend on each other.
static void
s_detector_check (s_ctx_t *ctx, const mesh_agent_config_t *agent, s_node_t *detector,
                  const char *path)
{
    const mesh_detector_config_t *det = &agent->detector;
    if (det->knn.k > det->knn.memory) {
        s_node_t *knn = s_find (detector, "knn");
        s_at (ctx, s_either (s_find (knn, "k"), s_find (knn, "memory"), knn ? knn : detector),
              "%s.detector.knn.k: must be at most knn.memory (%d), got %d", path,
              det->knn.memory, det->knn.k);
    }
}

//  What needs the key fields: group_by names only key fields; absent, it is all of them.
static void
s_incident_check (s_ctx_t *ctx, mesh_agent_config_t *agent, s_node_t *node, const char *path)
{
    char shown [64], declared [512];
    s_node_t *group_by = s_find (node, "group_by");
    mesh_incident_config_t *incident = &agent->incident;
    if (!group_by) {
        incident->group_by = s_calloc (ctx, agent->key_field_count, sizeof (char *));
        for (size_t i = 0; incident->group_by && i < agent->key_field_count; i++) {
            incident->group_by [i] = s_strdup (ctx, agent->key_fields [i]);
            if (incident->group_by [i])
                incident->group_by_count++;
        }
        return;
    }
    for (size_t i = 0; group_by->kind == S_SEQUENCE && i < group_by->count; i++) {
        s_node_t *item = group_by->kids [i];
        if (!s_given (item) || item->kind != S_SCALAR)
            continue;
        bool known = false;
        for (size_t j = 0; j < agent->key_field_count && !known; j++)
            known = !strcmp (agent->key_fields [j], item->text);
        if (!known && agent->key_field_count) {
            s_names_text (declared, sizeof declared, "", "none", agent->key_field_count,
                          s_string_at, agent->key_fields);
            s_at (ctx, item, "%s.incident.group_by[%zu]: '%s' is not one of this agent's key "
                  "fields (%s)", path, i, s_show (item->text, shown, sizeof shown), declared);
        }
    }
}

static int
s_agent_defaults (s_ctx_t *ctx, mesh_agent_config_t *agent)
{
    agent->value_field = s_strdup (ctx, "value");
    agent->time_field = s_strdup (ctx, "ts");
    agent->detector.kind = s_strdup (ctx, "ewma");
    agent->detector.alpha = 0.05;
    agent->detector.warmup = 30;
    agent->detector.threshold = 0.9995;
    agent->detector.max_series = 10000;
    agent->detector.holdoff = 0;
    agent->detector.mad.window = 64;
    agent->detector.cusum.k = 0.5;
    agent->detector.cusum.h = 8;
    agent->detector.seasonal.period_s = 86400;
    agent->detector.seasonal.period = 0;
    agent->detector.seasonal.bins = 48;
    agent->detector.seasonal.alpha = 0.1;
    agent->detector.knn.window = 8;
    agent->detector.knn.memory = 128;
    agent->detector.knn.k = 3;
    agent->detector.context.levels = 8;
    agent->detector.context.length = 3;
    agent->detector.context.slots = 176;
    agent->detector.bocpd.hazard = 0.001;
    agent->detector.bocpd.hypotheses = 12;
    agent->incident.group_wait_s = 0;
    agent->incident.group_interval_s = 300;
    agent->incident.repeat_interval_s = 3600;
    agent->incident.cooldown_s = 300;
    agent->incident.min_points = 1;
    agent->incident.min_points_span_s = 300;
    agent->incident.resolve_s = 300;
    agent->incident.max_groups = 10000;
    agent->incident.persist_interval_s = 5;
    agent->events.max_bytes = 1048576;
    agent->events.max_depth = 64;
    agent->events.max_keys = 1024;
    agent->events.max_future_skew_s = 300;
    agent->events.max_event_age_s = 0;
    agent->events.dead_letter_timeout_ms = 5000;
    agent->reason.max_steps = 3;
    agent->reason.deadline_ms = 120000;
    agent->reason.max_tokens = 256;
    agent->reason.incident_token_cap = 4000;
    agent->reason.budget_tokens = 200000;
    agent->reason.budget_window_s = 3600;
    agent->reason.queue_size = 64;
    agent->reason.workers = 1;
    agent->reason.overflow = s_strdup (ctx, "pause");
    agent->replicas = 1;
    return agent->value_field && agent->time_field && agent->detector.kind ? 0 : -1;
}

//  A topic an agent reads must not be one meshd writes into, or every message would
//  come round again: an action's topic only with allow_input_topic (a second agent
//  meant to read the first one's actions), a dead-letter topic never (a malformed
//  message would be read, refused and written there forever).
static void
s_topic_loops (s_ctx_t *ctx, const mesh_config_t *cfg)
{
    char shown [64];
    for (size_t a = 0; a < cfg->agent_count; a++) {
        const mesh_agent_config_t *agent = &cfg->agents [a];
        for (size_t t = 0; t < agent->topic_count; t++) {
            const char *topic = agent->topics [t];
            for (size_t i = 0; i < cfg->action_count; i++) {
                const mesh_action_spec_t *action = &cfg->actions [i];
                if (!action->topic || action->allow_input_topic || strcmp (action->topic, topic))
                    continue;
                s_node_t *at = s_find (s_find (ctx->actions, action->name), "topic");
                s_at (ctx, at ? at : ctx->actions, "actions.%s.topic: '%s' is an input topic "
                      "of agent %s, so its actions would come back to it as events; name "
                      "another topic, or set allow_input_topic: true if that loop is meant",
                      action->name, s_show (topic, shown, sizeof shown), agent->name);
            }
            for (size_t d = 0; d < cfg->agent_count; d++) {
                const char *dlq = cfg->agents [d].dead_letter_topic;
                if (dlq && !strcmp (dlq, topic))
                    s_at (ctx, s_find (ctx->agents->kids [d], "dead_letter_topic"),
                          "agents[%zu].dead_letter_topic: '%s' is an input topic of agent %s, "
                          "so a malformed message would be read and set aside forever; name "
                          "another topic", d, s_show (dlq, shown, sizeof shown), agent->name);
            }
        }
    }
}

//  One rule file twice in an agent's chain (the global rules, then its own), however
//  it is spelled (./a.lua, a symlink to it): a rule runs once per chain.
static void
s_rule_repeats (s_ctx_t *ctx, const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                const char *path)
{
    if (ctx->snapshot)
        return;                         //  not read: the supervisor checked these bytes
    size_t count = cfg->global_rule_count + agent->rule_count;
    char **real = s_calloc (ctx, count, sizeof *real);
    for (size_t i = 0; real && i < count; i++) {
        bool global = i < cfg->global_rule_count;
        size_t at = global ? i : i - cfg->global_rule_count;
        const char *file = global ? cfg->global_rules [at] : agent->rules [at];
        mesh_config_pos_t pos = global ? cfg->global_rule_pos [at] : agent->rule_pos [at];
        real [i] = realpath (file, NULL);
        for (size_t j = 0; real [i] && j < i; j++) {
            if (!real [j] || strcmp (real [i], real [j]))
                continue;
            bool earlier_global = j < cfg->global_rule_count;
            mesh_config_pos_t first = earlier_global ? cfg->global_rule_pos [j]
                                    : agent->rule_pos [j - cfg->global_rule_count];
            s_problem (ctx, pos.line, pos.col, "%s.rules: %s is already in this agent's rule "
                       "chain (%s, at %d:%d); a rule file is listed once", path, file,
                       earlier_global ? "gates.rules" : "its own rules", first.line, first.col);
            break;
        }
    }
    for (size_t i = 0; real && i < count; i++)
        free (real [i]);
    free (real);
}

static void
s_agents (s_ctx_t *ctx, mesh_config_t *cfg, s_node_t *node)
{
    char what [96], path [S_PATH_MAX], shown [64];
    if (node->kind == S_INVALID)
        return;
    if (!s_is_null (node) && node->kind != S_SEQUENCE) {
        s_at (ctx, node, "agents: expected a sequence of agents (\"- name: ...\"), got %s",
              s_what (node, what, sizeof what));
        return;
    }
    size_t count = s_is_null (node) ? 0 : node->count;
    if (!count) {
        s_at (ctx, node, "agents: at least one agent is required");
        return;
    }
    cfg->agents = s_calloc (ctx, count, sizeof *cfg->agents);
    s_node_t **names = s_calloc (ctx, count, sizeof *names);
    if (!cfg->agents || !names) {
        free (names);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        mesh_agent_config_t *agent = &cfg->agents [cfg->agent_count++];
        if (s_agent_defaults (ctx, agent))
            break;
        s_index (path, "agents", i);
        s_node_t *seen [S_MAX_FIELDS];
        s_walk (ctx, node->kids [i], path, s_agent_fields, agent, seen);
        if (node->kids [i]->kind != S_MAPPING)
            continue;
        if (agent->name) {
            names [i] = seen [G_NAME];
            if (!agent->group && asprintf (&agent->group, "meshd.%s", agent->name) < 0) {
                agent->group = NULL;
                s_oom (ctx);
            }
        }
        s_agent_refs (ctx, cfg, agent, seen, path);
        s_rule_repeats (ctx, cfg, agent, path);
        s_detector_check (ctx, agent, seen [G_DETECTOR], path);
        s_incident_check (ctx, agent, seen [G_INCIDENT], path);
    }
    size_t *first = s_duplicates (ctx, names, count);
    for (size_t i = 0; first && i < count; i++)
        if (first [i] != SIZE_MAX)
            s_at (ctx, names [i], "agents[%zu].name: '%s' is already the name of agents[%zu] "
                  "(at %d:%d); agent names are unique", i,
                  s_show (names [i]->text, shown, sizeof shown), first [i],
                  names [first [i]]->line, names [first [i]]->col);
    free (first);
    free (names);
    s_topic_loops (ctx, cfg);
}

//  --------------------------------------------------------------------------
//  audit: settings of the decision log's own machinery.  Each key set under it (ship,
//  ...) has its own table and function; add an entry to s_audit_fields beside ship.

//  audit.ship.source: a header value, one line of printable text.
static const char *
s_check_source (const char *text)
{
    size_t length = strlen (text);
    bool good = length >= 1 && length <= 255;
    for (size_t i = 0; good && i < length; i++)
        good = (unsigned char) text [i] >= ' ' && text [i] != 0x7f;
    return good ? NULL : "1-255 printable characters (the name of this host in a collector)";
}

static void
s_ship_security (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_kafka_security_t *sec = &((mesh_ship_config_t *) base)->security;
    s_node_t *seen [S_MAX_FIELDS];
    if (s_is_null (node)) {
        s_at (ctx, node, "%s: expected a mapping with at least protocol", path);
        return;
    }
    sec->given = true;
    s_walk (ctx, node, path, s_security_fields, sec, seen);
    if (node->kind == S_MAPPING)
        s_security_check (ctx, sec, node, seen, path);
}

enum { SH_TOPIC, SH_BROKERS, SH_IN_FLIGHT, SH_SOURCE, SH_SECURITY };
static const s_field_t s_ship_fields [] = {
    [SH_TOPIC] = S_STR ("topic", mesh_ship_config_t, topic, s_check_write_topic),
    [SH_BROKERS] = S_STR ("brokers", mesh_ship_config_t, brokers, s_check_broker_list),
    [SH_IN_FLIGHT] = S_NUM ("max_in_flight", mesh_ship_config_t, max_in_flight, F_INT, 1,
                            100000),
    [SH_SOURCE] = S_STR ("source", mesh_ship_config_t, source, s_check_source),
    [SH_SECURITY] = { .key = "security", .type = F_CALL, .handler = s_ship_security },
    { NULL }
};

//  audit.ship: the decision log produced to Kafka (daemon/ship.h).  What depends on other
//  sections (kafka, agents) is checked once they are read, by s_ship_derive.
static void
s_audit_ship (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    s_node_t *seen [S_MAX_FIELDS];
    s_walk (ctx, node, path, s_ship_fields, &cfg->ship, seen);
    if (node->kind == S_MAPPING && !s_given (seen [SH_TOPIC]))
        s_at (ctx, node, "%s.topic: required to ship the decision log (a Kafka topic such as "
              "meshd.decisions); remove %s to ship nothing", path, path);
}

//  audit.origin: one line of printable text without spaces (a checkpoint's first line).
static const char *
s_check_origin (const char *text)
{
    size_t length = strlen (text);
    bool good = length >= 1 && length <= 255;
    for (size_t i = 0; good && i < length; i++)
        good = (unsigned char) text [i] > ' ' && text [i] != 0x7f && text [i] != '+';
    return good ? NULL : "1-255 printable characters without spaces or '+' (the log's name "
                         "in its checkpoints, e.g. host.example/meshd)";
}

//  audit.rotate: when the ledger seals the active log into a segment.
static const s_field_t s_rotate_fields [] = {
    S_NUM ("max_bytes", mesh_config_t, rotate_max_bytes, F_SIZE, 0, 1LL << 50),
    S_NUM ("max_age_s", mesh_config_t, rotate_max_age_s, F_INT, 0, 366 * 86400),
    { NULL }
};

static void
s_audit_rotate (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_walk (ctx, node, path, s_rotate_fields, base, NULL);
}

//  audit.retain: which sealed segments the ledger removes.
static const s_field_t s_retain_fields [] = {
    S_NUM ("max_age_days", mesh_config_t, retain_max_age_days, F_INT, 0, 36500),
    S_NUM ("max_bytes", mesh_config_t, retain_max_bytes, F_SIZE, 0, 1LL << 50),
    { NULL }
};

static void
s_audit_retain (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_walk (ctx, node, path, s_retain_fields, base, NULL);
}

static const s_field_t s_audit_fields [] = {
    S_NUM ("checkpoint_interval_s", mesh_config_t, checkpoint_interval_s, F_INT, 0, 86400),
    { .key = "rotate", .type = F_CALL, .handler = s_audit_rotate },
    { .key = "retain", .type = F_CALL, .handler = s_audit_retain },
    S_PATHF ("signing_key", mesh_config_t, signing_key),
    S_STR ("origin", mesh_config_t, origin, s_check_origin),
    { .key = "ship", .type = F_CALL, .handler = s_audit_ship },
    { NULL }
};

static void
s_audit (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    s_walk (ctx, node, path, s_audit_fields, base, NULL);
}

//  audit.ship against the rest of the config.
static void
s_ship_derive (s_ctx_t *ctx, mesh_config_t *cfg)
{
    mesh_ship_config_t *ship = &cfg->ship;
    if (!ship->topic)
        return;
    mesh_config_pos_t topic = mesh_config_where (cfg, "audit.ship.topic");
    if (cfg->embedded && !ship->brokers && ship->security.given) {
        mesh_config_pos_t at = mesh_config_where (cfg, "audit.ship.security");
        s_problem (ctx, at.line, at.col, "audit.ship.security: not used with the embedded "
                   "broker; name the cluster to ship to in audit.ship.brokers, or remove this "
                   "block");
    }
    //  The same cluster, unless brokers names another one (then it is the operator's call).
    for (size_t i = 0; !ship->brokers && i < cfg->agent_count; i++)
        for (size_t j = 0; j < cfg->agents [i].topic_count; j++)
            if (!strcmp (cfg->agents [i].topics [j], ship->topic))
                s_problem (ctx, topic.line, topic.col, "audit.ship.topic: '%s' is an input "
                           "topic of agent '%s': every decision would become an event and "
                           "another decision; ship to a topic no agent reads", ship->topic,
                           cfg->agents [i].name);
    for (size_t i = 0; !ship->brokers && i < cfg->action_count; i++)
        if (cfg->actions [i].topic && !strcmp (cfg->actions [i].topic, ship->topic))
            s_problem (ctx, topic.line, topic.col, "audit.ship.topic: '%s' is the topic of "
                       "action '%s'; the decision log needs a topic of its own", ship->topic,
                       cfg->actions [i].name);
}

static void
s_ship_free (mesh_ship_config_t *ship)
{
    free (ship->topic);
    free (ship->brokers);
    free (ship->source);
    s_security_free (&ship->security);
}

//  --------------------------------------------------------------------------
//  http: the listener (daemon/http/http.c).  An address literal only: no name to resolve at
//  start, and what it binds is what the file says.

static void
s_http_address (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    const char *text;
    char shown [64];
    unsigned char addr [sizeof (struct in6_addr)];
    if (!s_get_string (ctx, node, path, &text))
        return;
    if (inet_pton (AF_INET, text, addr) != 1 && inet_pton (AF_INET6, text, addr) != 1) {
        s_at (ctx, node, "%s: expected an IPv4 or IPv6 address (127.0.0.1, ::1, 0.0.0.0), got "
              "'%s'", path, s_show (text, shown, sizeof shown));
        return;
    }
    free (cfg->http_address);
    cfg->http_address = s_strdup (ctx, text);
}

enum { H_LISTEN, H_ADDRESS, H_PORT, H_MAX, H_PER_IP, H_TIMEOUT, H_REQUEST };
static const s_field_t s_http_fields [] = {
    [H_LISTEN] = { .key = "listen", .type = F_BOOL, .offset = offsetof (mesh_config_t,
                                                                        http_listen) },
    [H_ADDRESS] = { .key = "address", .type = F_CALL, .handler = s_http_address },
    [H_PORT] = S_NUM ("port", mesh_config_t, http_port, F_INT, 1, 65535),
    [H_MAX] = S_NUM ("max_connections", mesh_config_t, http_max_connections, F_INT, 1, 1024),
    [H_PER_IP] = S_NUM ("max_connections_per_ip", mesh_config_t, http_max_connections_per_ip,
                        F_INT, 1, 1024),
    [H_TIMEOUT] = S_NUM ("timeout_s", mesh_config_t, http_timeout_s, F_INT, 1, 3600),
    [H_REQUEST] = S_NUM ("max_request_bytes", mesh_config_t, http_max_request_bytes, F_SIZE,
                         1024, 1048576),
    { NULL }
};

static void
s_http (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    mesh_config_t *cfg = base;
    s_node_t *seen [S_MAX_FIELDS];
    s_walk (ctx, node, path, s_http_fields, cfg, seen);
    if (cfg->http_max_connections_per_ip > cfg->http_max_connections)
        s_at (ctx, s_either (seen [H_PER_IP], seen [H_MAX], node),
              "%s.max_connections_per_ip: must be at most max_connections (%d), got %d", path,
              cfg->http_max_connections, cfg->http_max_connections_per_ip);
}

//  --------------------------------------------------------------------------
//  The top level.

static void
s_defer_agents (s_ctx_t *ctx, s_node_t *node, const char *path, void *base)
{
    ctx->agents = node;
}

static const s_field_t s_root_fields [] = {
    { .key = "daemon", .type = F_CALL, .handler = s_daemon },
    { .key = "kafka", .type = F_CALL, .required = true, .handler = s_kafka },
    { .key = "gates", .type = F_SECTION, .sub = s_gates_fields },
    { .key = "backends", .type = F_CALL, .handler = s_backends },
    { .key = "actions", .type = F_CALL, .handler = s_actions },
    { .key = "agents", .type = F_CALL, .required = true, .handler = s_defer_agents },
    { .key = "sandbox", .type = F_CALL, .handler = s_sandbox },
    { .key = "budget", .type = F_CALL, .handler = s_root_budget },
    { .key = "audit", .type = F_CALL, .handler = s_audit },
    { .key = "http", .type = F_CALL, .handler = s_http },
    { NULL }
};

//  --------------------------------------------------------------------------
//  Every key the loader accepts, for meshd --list-config-keys and the docs test.
//  The keys come from the field tables above; what this needs to know besides
//  them is which table a hand-written handler walks and how its entries are
//  named (a mapping of names chosen by the operator, or a sequence).  A handler
//  that is not listed here takes a value and prints as one key.

typedef enum { S_KEYS_PLAIN, S_KEYS_NAMED, S_KEYS_SEQUENCE } s_keys_shape_t;

static const struct {
    s_handler_fn *handler;
    const s_field_t *sub;
    s_keys_shape_t shape;
} s_call_subs [] = {
    { s_daemon, s_daemon_fields, S_KEYS_PLAIN },
    { s_kafka, s_kafka_fields, S_KEYS_PLAIN },
    { s_kafka_security, s_security_fields, S_KEYS_PLAIN },
    { s_backends, s_backend_fields, S_KEYS_NAMED },
    { s_backend_budget, s_budget_fields, S_KEYS_PLAIN },
    { s_actions, s_action_fields, S_KEYS_NAMED },
    { s_params, s_param_fields, S_KEYS_NAMED },
    { s_action_budget, s_budget_fields, S_KEYS_PLAIN },
    { s_defer_agents, s_agent_fields, S_KEYS_SEQUENCE },
    { s_reason_budget, s_budget_fields, S_KEYS_PLAIN },
    { s_silences, s_silence_fields, S_KEYS_SEQUENCE },
    { s_sandbox, s_sandbox_fields, S_KEYS_PLAIN },
    { s_root_budget, s_budget_fields, S_KEYS_PLAIN },
    { s_audit, s_audit_fields, S_KEYS_PLAIN },
    { s_audit_rotate, s_rotate_fields, S_KEYS_PLAIN },
    { s_audit_retain, s_retain_fields, S_KEYS_PLAIN },
    { s_audit_ship, s_ship_fields, S_KEYS_PLAIN },
    { s_ship_security, s_security_fields, S_KEYS_PLAIN },
    { s_http, s_http_fields, S_KEYS_PLAIN },
};

static int
s_list_keys (const s_field_t *fields, const char *prefix, int depth,
             void (*each) (const char *key, void *arg), void *arg)
{
    int count = 0;
    if (depth > 16)                     //  the tables nest a few levels; never loop
        return 0;
    for (int i = 0; fields [i].key; i++) {
        const s_field_t *field = &fields [i];
        char path [S_PATH_MAX];
        snprintf (path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", field->key);
        each (path, arg);
        count++;
        const s_field_t *sub = field->type == F_SECTION ? field->sub : NULL;
        s_keys_shape_t shape = S_KEYS_PLAIN;
        if (field->type == F_CALL)
            for (size_t j = 0; j < sizeof s_call_subs / sizeof s_call_subs [0]; j++)
                if (s_call_subs [j].handler == field->handler) {
                    sub = s_call_subs [j].sub;
                    shape = s_call_subs [j].shape;
                }
        if (!sub)
            continue;
        char inner [S_PATH_MAX];
        const char *suffix = shape == S_KEYS_NAMED ? ".<name>"
                           : shape == S_KEYS_SEQUENCE ? "[]" : "";
        if (strlen (path) + strlen (suffix) >= sizeof inner)
            continue;                   //  never: the tables' paths are short
        memcpy (inner, path, strlen (path));
        strcpy (inner + strlen (path), suffix);
        count += s_list_keys (sub, inner, depth + 1, each, arg);
    }
    return count;
}

int
mesh_config_list_keys (void (*each) (const char *key, void *arg), void *arg)
{
    return s_list_keys (s_root_fields, "", 0, each, arg);
}

static int
s_config_defaults (s_ctx_t *ctx, mesh_config_t *cfg, const char *path)
{
    cfg->path = s_strdup (ctx, path);
    cfg->runtime_dir = s_strdup (ctx, "/run/meshd");
    cfg->state_dir = s_strdup (ctx, "/var/lib/meshd");
    cfg->heartbeat_ms = 1000;
    cfg->http_address = s_strdup (ctx, "127.0.0.1");
    cfg->http_port = 9464;
    cfg->http_max_connections = 32;
    cfg->http_max_connections_per_ip = 8;
    cfg->http_timeout_s = 10;
    cfg->http_max_request_bytes = 8192;
    cfg->liveness_timeout_ms = 10000;
    cfg->backoff_initial_ms = 100;
    cfg->backoff_max_ms = 30000;
    cfg->healthy_after_s = 60;
    cfg->restart_intensity = 5;
    cfg->quarantine_after = 3;
    cfg->restart_period_s = 60;
    cfg->drain_timeout_ms = 10000;
    cfg->embedded_partitions = 4;
    cfg->session_timeout_ms = 10000;
    cfg->commit_interval_ms = 1000;
    cfg->prefetch_messages = MESH_PREFETCH_DEFAULT;
    cfg->kafka_security.verify_hostname = true;
    cfg->ship.max_in_flight = 1000;
    cfg->checkpoint_interval_s = 60;
    cfg->rotate_max_bytes = (size_t) 256 << 20;
    cfg->ship.security.verify_hostname = true;
    cfg->lua_instructions = 1000000;
    cfg->lua_memory = 8 * 1024 * 1024;
    cfg->lua_time_ms = 50;
    return cfg->path && cfg->runtime_dir && cfg->state_dir ? 0 : -1;
}

//  Add TOPIC to the embedded broker's list unless it is there.
static void
s_add_topic (s_ctx_t *ctx, mesh_config_t *cfg, const char *topic, size_t capacity)
{
    for (size_t i = 0; i < cfg->embedded_topic_count; i++)
        if (!strcmp (cfg->embedded_topics [i], topic))
            return;
    assert (cfg->embedded_topic_count < capacity);
    char *copy = s_strdup (ctx, topic);
    if (copy)
        cfg->embedded_topics [cfg->embedded_topic_count++] = copy;
}

//  Defaults that derive from other keys.
static void
s_derive (s_ctx_t *ctx, mesh_config_t *cfg)
{
    if (!cfg->decision_log && cfg->state_dir
    &&  asprintf (&cfg->decision_log, "%s/decisions.jsonl", cfg->state_dir) < 0) {
        cfg->decision_log = NULL;
        s_oom (ctx);
    }
    if (!cfg->signing_key && cfg->state_dir
    &&  asprintf (&cfg->signing_key, "%s/audit-signing.key", cfg->state_dir) < 0) {
        cfg->signing_key = NULL;
        s_oom (ctx);
    }
    if (!cfg->origin) {
        char host [256] = "";
        if (gethostname (host, sizeof host - 1) != 0 || !*host || s_check_origin (host))
            snprintf (host, sizeof host, "localhost");
        if (asprintf (&cfg->origin, "%s/meshd", host) < 0) {
            cfg->origin = NULL;
            s_oom (ctx);
        }
    }
    //  Without an explicit list the embedded broker creates every topic the
    //  config names: those agents read and those kafka actions write.
    if (cfg->embedded && !ctx->embedded_topics_given) {
        size_t capacity = cfg->action_count + 1;       //  + audit.ship.topic
        for (size_t i = 0; i < cfg->agent_count; i++)
            capacity += cfg->agents [i].topic_count;
        s_strv_free (&cfg->embedded_topics, cfg->embedded_topic_count);
        cfg->embedded_topic_count = 0;
        cfg->embedded_topics = s_calloc (ctx, capacity, sizeof (char *));
        for (size_t i = 0; cfg->embedded_topics && i < cfg->agent_count; i++)
            for (size_t j = 0; j < cfg->agents [i].topic_count; j++)
                s_add_topic (ctx, cfg, cfg->agents [i].topics [j], capacity);
        for (size_t i = 0; cfg->embedded_topics && i < cfg->action_count; i++)
            if (cfg->actions [i].topic)
                s_add_topic (ctx, cfg, cfg->actions [i].topic, capacity);
        if (cfg->embedded_topics && cfg->ship.topic && !cfg->ship.brokers)
            s_add_topic (ctx, cfg, cfg->ship.topic, capacity);
    }
    s_ship_derive (ctx, cfg);
}

//  The parsed file as JSON (scalars as strings), and where each key and item is, for
//  reload's comparisons: built from the one tree the loader parsed, never by a second
//  parse.  NULL if out of memory.
static json_t *
s_tree (const s_node_t *node, const char *path, json_t *where)
{
    if (node->kind == S_SCALAR)
        return s_is_null (node) ? json_null () : json_stringn (node->text, node->length);
    if (node->kind == S_INVALID)
        return json_null ();
    bool map = node->kind == S_MAPPING;
    json_t *self = map ? json_object () : json_array ();
    for (size_t i = 0; self && i < node->count; i += map ? 2 : 1) {
        const s_node_t *at = node->kids [i];
        //  A key that is not a plain scalar (a tagged empty key, a mapping as key) has
        //  no text; the walk reports it, the tree names it "".
        const char *key = at->text ? at->text : "";
        char *sub = NULL;
        int rc = map ? asprintf (&sub, "%s%s%s", path, *path ? "." : "", key)
                     : asprintf (&sub, "%s[%zu]", path, i);
        json_t *kid = rc < 0 ? NULL : s_tree (map ? node->kids [i + 1] : at, sub, where);
        json_t *pos = json_pack ("[ii]", at->line, at->col);
        //  Each *_set_new takes its value, even when it fails; until then this owns both.
        bool placed = false;
        if (kid && pos) {
            placed = json_object_set_new (where, sub, pos) == 0;
            pos = NULL;
            if (placed)
                placed = (map ? json_object_set_new (self, key, kid)
                              : json_array_append_new (self, kid)) == 0;
            else
                json_decref (kid);
            kid = NULL;
        }
        json_decref (kid);
        json_decref (pos);
        if (!placed) {
            json_decref (self);
            self = NULL;
        }
        free (sub);
    }
    return self;
}

//  Read the whole file, at most S_MAX_BYTES, once it passed the StrictModes check: the
//  descriptor read is the file checked.
static char *
s_read (s_ctx_t *ctx, const char *path, size_t *length_p)
{
    char why [PATH_MAX + 256];
    FILE *file = fopen (path, "rbe");
    if (!file) {
        s_problem (ctx, 1, 1, "cannot open the configuration: %s", strerror (errno));
        return NULL;
    }
    if (mesh_config_check_trust (path, why, sizeof why)) {
        s_problem (ctx, 1, 1, "the configuration cannot be trusted: %s", why);
        fclose (file);
        return NULL;
    }
    struct stat opened, checked;
    char real [PATH_MAX];
    if (fstat (fileno (file), &opened) != 0 || !realpath (path, real)
    ||  stat (real, &checked) != 0 || opened.st_dev != checked.st_dev
    ||  opened.st_ino != checked.st_ino) {
        s_problem (ctx, 1, 1, "the configuration changed while it was being opened; try again");
        fclose (file);
        return NULL;
    }
    char *buf = malloc (S_MAX_BYTES + 1);
    if (!buf) {
        fclose (file);
        s_oom (ctx);
        return NULL;
    }
    size_t length = fread (buf, 1, S_MAX_BYTES + 1, file);
    int error = ferror (file) ? errno : 0;
    fclose (file);
    if (error) {
        s_problem (ctx, 1, 1, "cannot read the configuration: %s", strerror (error));
        free (buf);
        return NULL;
    }
    if (length > S_MAX_BYTES) {
        s_problem (ctx, 1, 1, "the file is larger than 1 MiB (%d bytes); a configuration is "
                   "never that large", S_MAX_BYTES);
        free (buf);
        return NULL;
    }
    *length_p = length;
    return buf;
}

//  --------------------------------------------------------------------------
//  Public API

//  Load PATH, or (SNAPSHOT given) the snapshot of it whose bytes must hash to SHA256.
static int
s_load (const char *path, const char *snapshot, const char *sha256, mesh_config_t **config_p,
        FILE *err)
{
    assert (path);
    assert (config_p);
    *config_p = NULL;

    s_ctx_t *ctx = calloc (1, sizeof *ctx);
    if (!ctx) {
        if (err)
            fprintf (err, "%s:1:1: out of memory while loading the configuration\n", path);
        return 1;
    }
    ctx->file = path;
    ctx->snapshot = snapshot != NULL;
    mesh_config_t *cfg = NULL;
    s_node_t *root = NULL;
    size_t length = 0;
    char *buf = s_read (ctx, snapshot ? snapshot : path, &length);
    uint8_t digest [crypto_hash_sha256_BYTES];
    char hex [65] = "";
    if (buf) {
        crypto_hash_sha256 (digest, (const unsigned char *) buf, length);
        sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    }
    if (buf && snapshot && (!sha256 || strcmp (hex, sha256))) {
        s_problem (ctx, 1, 1, "snapshot %s has SHA-256 %s, not %s as meshd recorded: it was "
                   "changed, so it is not used", snapshot, hex, sha256 ? sha256 : "(none)");
        free (buf);
        buf = NULL;
    }
    char *copy = buf ? s_strdup (ctx, path) : NULL;
    if (copy)
        ctx->dir = s_strdup (ctx, dirname (copy));
    if (ctx->dir)
        root = s_parse (ctx, buf, length);
    if (root)
        cfg = s_calloc (ctx, 1, sizeof *cfg);
    if (cfg && s_config_defaults (ctx, cfg, path) == 0) {
        memcpy (cfg->sha256, hex, sizeof hex);
        cfg->bytes = buf;
        cfg->length = length;
        buf = NULL;
        cfg->snapshot = snapshot ? s_strdup (ctx, snapshot) : NULL;
        cfg->where = json_object ();
        cfg->tree = cfg->where ? s_tree (root, "", cfg->where) : NULL;
        if (!cfg->tree)
            s_oom (ctx);
        s_walk (ctx, root, "", s_root_fields, cfg, NULL);
        if (ctx->agents)
            s_agents (ctx, cfg, ctx->agents);
        s_derive (ctx, cfg);
    }
    int problems = s_report (ctx, err);
    if (problems == 0 && cfg)
        *config_p = cfg;
    else
        mesh_config_destroy (&cfg);
    s_node_destroy (&root);
    free (copy);
    free (ctx->dir);
    free (buf);
    free (ctx);
    return problems;
}

int
mesh_config_load (const char *path, mesh_config_t **config_p, FILE *err)
{
    return s_load (path, NULL, NULL, config_p, err);
}

int
mesh_config_load_snapshot (const char *origin, const char *snapshot, const char *sha256,
                           mesh_config_t **config_p, FILE *err)
{
    assert (snapshot);
    return s_load (origin, snapshot, sha256, config_p, err);
}

int
mesh_config_snapshot (mesh_config_t *self, const char *dir)
{
    assert (self);
    assert (dir);
    char *final = NULL, *tmp = NULL;
    int rc = -1, fd = -1;
    if (asprintf (&final, "%s/config-%s.yaml", dir, self->sha256) < 0
    ||  asprintf (&tmp, "%s/.config-%.16s-XXXXXX", dir, self->sha256) < 0) {
        mesh_err ("config: cannot snapshot %s: out of memory", self->path);
        goto done;
    }
    struct stat st;
    if (stat (final, &st) == 0 && S_ISREG (st.st_mode)) {
        rc = 0;                         //  its name is the hash of what is in it
        goto done;
    }
    fd = mkostemp (tmp, O_CLOEXEC);     //  mode 0600
    size_t done = 0;
    while (fd >= 0 && done < self->length) {
        ssize_t n = write (fd, self->bytes + done, self->length - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t) n;
    }
    if (fd < 0 || done != self->length || fsync (fd) != 0 || close (fd) != 0
    ||  rename (tmp, final) != 0) {
        mesh_err ("config: cannot write the snapshot %s of %s: %s", final, self->path,
                  strerror (errno));
        if (fd >= 0)
            unlink (tmp);
        fd = -1;
        goto done;
    }
    fd = -1;
    int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync (dfd);
        close (dfd);
    }
    rc = 0;
done:
    if (fd >= 0)
        close (fd);
    if (rc == 0) {
        free (self->snapshot);
        self->snapshot = final;
        final = NULL;
    }
    free (final);
    free (tmp);
    return rc;
}

mesh_config_pos_t
mesh_config_where (const mesh_config_t *self, const char *path)
{
    assert (self);
    json_t *pos = json_object_get (self->where, path);
    return (mesh_config_pos_t) { (int) json_integer_value (json_array_get (pos, 0)),
                                 (int) json_integer_value (json_array_get (pos, 1)) };
}

static void
s_agent_free (mesh_agent_config_t *agent)
{
    free (agent->name);
    s_strv_free (&agent->topics, agent->topic_count);
    free (agent->group);
    s_strv_free (&agent->key_fields, agent->key_field_count);
    free (agent->value_field);
    free (agent->time_field);
    free (agent->detector.kind);
    s_strv_free (&agent->incident.group_by, agent->incident.group_by_count);
    for (size_t i = 0; i < agent->incident.silence_count; i++) {
        s_strv_free (&agent->incident.silences [i].matchers,
                     agent->incident.silences [i].matcher_count);
        free (agent->incident.silences [i].comment);
    }
    free (agent->incident.silences);
    free (agent->reason.backend);
    s_strv_free (&agent->reason.backends, agent->reason.backend_count);
    s_free_budget (&agent->reason.budget);
    s_strv_free (&agent->reason.high_priority_match, agent->reason.high_priority_match_count);
    s_strv_free (&agent->actions, agent->action_count);
    free (agent->fallback);
    free (agent->reason.overflow);
    free (agent->dead_letter_topic);
    s_strv_free (&agent->rules, agent->rule_count);
    free (agent->rule_pos);
    free (agent->rules_hash);
}

void
mesh_config_destroy (mesh_config_t **self_p)
{
    assert (self_p);
    mesh_config_t *self = *self_p;
    if (!self)
        return;
    free (self->path);
    free (self->snapshot);
    free (self->bytes);
    json_decref (self->tree);
    json_decref (self->where);
    free (self->runtime_dir);
    free (self->state_dir);
    free (self->operator_group);
    free (self->http_address);
    free (self->decision_log);
    free (self->agent_binary);
    free (self->brokers);
    s_kafka_security_free (self);
    s_strv_free (&self->embedded_topics, self->embedded_topic_count);
    s_strv_free (&self->global_rules, self->global_rule_count);
    free (self->global_rule_pos);
    for (size_t i = 0; i < self->backend_count; i++) {
        mesh_backend_config_t *backend = &self->backends [i];
        free (backend->name);
        free (backend->file);
        free (backend->url);
        free (backend->model);
        free (backend->api_key_file);
        s_free_budget (&backend->budget);
        s_strv_free (&backend->stop, backend->stop_count);
        free (backend->keep_alive);
    }
    free (self->backends);
    for (size_t i = 0; i < self->action_count; i++) {
        mesh_action_spec_t *action = &self->actions [i];
        free (action->name);
        free (action->description);
        free (action->topic);
        for (size_t j = 0; j < action->param_count; j++) {
            free (action->params [j].name);
            free (action->params [j].pattern);
            s_strv_free (&action->params [j].enum_values, action->params [j].enum_count);
        }
        free (action->params);
        s_free_budget (&action->budget);
        s_exec_free (&action->exec);
        s_webhook_free (&action->webhook);
    }
    free (self->actions);
    for (size_t i = 0; i < self->agent_count; i++)
        s_agent_free (&self->agents [i]);
    free (self->agents);
    free (self->sandbox.user);
    free (self->sandbox.group);
    s_free_budget (&self->budget);
    s_ship_free (&self->ship);
    free (self->signing_key);
    free (self->origin);
    free (self);
    *self_p = NULL;
}

const mesh_agent_config_t *
mesh_config_agent (const mesh_config_t *self, const char *name)
{
    assert (self);
    for (size_t i = 0; name && i < self->agent_count; i++)
        if (self->agents [i].name && !strcmp (self->agents [i].name, name))
            return &self->agents [i];
    return NULL;
}

const mesh_backend_config_t *
mesh_config_backend (const mesh_config_t *self, const char *name)
{
    assert (self);
    for (size_t i = 0; name && i < self->backend_count; i++)
        if (self->backends [i].name && !strcmp (self->backends [i].name, name))
            return &self->backends [i];
    return NULL;
}

const mesh_action_spec_t *
mesh_config_action (const mesh_config_t *self, const char *name)
{
    assert (self);
    for (size_t i = 0; name && i < self->action_count; i++)
        if (self->actions [i].name && !strcmp (self->actions [i].name, name))
            return &self->actions [i];
    return NULL;
}

//  --- declared parameters as JSON (the gate's ctx.action and the reasoning prompt) ----

const char *
mesh_config_flavor_name (mesh_backend_flavor_t flavor)
{
    return (int) flavor >= 0 && (int) flavor < MESH_FLAVOR_COUNT_ ? s_flavor_names [flavor]
                                                                   : "unknown";
}

const char *
mesh_config_action_kind_name (mesh_action_kind_t kind)
{
    return (int) kind >= 0 && (size_t) kind < sizeof s_action_kinds / sizeof s_action_kinds [0] - 1
         ? s_action_kinds [kind] : "unknown";
}

const char *
mesh_config_param_type_name (mesh_param_type_t type)
{
    switch (type) {
        case MESH_PARAM_STRING: return "string";
        case MESH_PARAM_INTEGER: return "integer";
        case MESH_PARAM_NUMBER: return "number";
        case MESH_PARAM_BOOLEAN: return "boolean";
    }
    return "string";
}

json_t *
mesh_config_bound_json (mesh_param_type_t type, double value)
{
    if (type == MESH_PARAM_INTEGER && value > -9e15 && value < 9e15
        && value == (double) (json_int_t) value)
        return json_integer ((json_int_t) value);
    return json_real (value);
}

json_t *
mesh_config_param_json (const mesh_param_spec_t *param)
{
    json_t *spec = json_pack ("{s:s, s:b}", "type", mesh_config_param_type_name (param->type),
                              "required", param->required);
    if (param->type == MESH_PARAM_STRING) {
        json_object_set_new (spec, "max_length",
                             json_integer ((json_int_t) (param->max_length ? param->max_length
                                                                           : 256)));
        if (param->pattern)
            json_object_set_new (spec, "pattern", json_string (param->pattern));
        if (param->enum_count) {
            json_t *values = json_array ();
            for (size_t i = 0; i < param->enum_count; i++)
                json_array_append_new (values, json_string (param->enum_values[i]));
            json_object_set_new (spec, "enum", values);
        }
    }
    if (param->has_min)
        json_object_set_new (spec, "min", mesh_config_bound_json (param->type, param->min));
    if (param->has_max)
        json_object_set_new (spec, "max", mesh_config_bound_json (param->type, param->max));
    //  Only when set: the spec of every other parameter (and the records that carry it,
    //  ctx_action among them) stays as it was.
    if (param->allow_dash)
        json_object_set_new (spec, "allow_dash", json_true ());
    return spec;
}
