/*  sandbox - one validator rule: loading it, and evaluating it alone (see sandbox.h).
 *
 *  Loading is where a rule file is judged as a file: a regular file, not
 *  world-writable, at most 256 KiB, without NUL bytes (text only: Lua's own loader
 *  would otherwise take a precompiled chunk, and crafted bytecode crashes the VM).
 *  Then the rule is run once in a state of its own (vm.c) to see that its top level
 *  returns {name, description, check}; the name and description are kept.  The
 *  source is kept too, for the rules hash and the archive of rule sets (gate.c).
 *
 *  Evaluating a rule alone (rule tests, `meshctl rules test`) goes through a vm of
 *  its own, built on first use and guarded by a mutex, so that a sandbox may be
 *  evaluated from several threads; the gate evaluates whole chains in its own vms.
 */
#include "sandbox.h"
#include "log.h"
#include "vm.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct _mesh_sandbox_t {
    char *path;                         //  as given, for messages
    char *source;
    size_t size;
    char *name;
    char *description;
    mesh_sandbox_limits_t limits;
    pthread_mutex_t lock;               //  guards vm
    mesh_vm_t *vm;                      //  for mesh_sandbox_eval, built on first use
};

static char *
s_vformat (const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf (&s, fmt, ap) < 0)
        return NULL;
    return s;
}

static char *
s_format (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *s = s_vformat (fmt, ap);
    va_end (ap);
    return s;
}

//  Hand a load problem to the caller (or log it when the caller did not ask).
static void
s_fail (char **err, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *msg = s_vformat (fmt, ap);
    va_end (ap);
    if (err) {
        free (*err);
        *err = msg;
    }
    else {
        mesh_err ("%s", msg ? msg : "out of memory");
        free (msg);
    }
}

static const char *
s_basename (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

static mesh_sandbox_limits_t
s_limits (const mesh_sandbox_limits_t *limits)
{
    mesh_sandbox_limits_t l = {
        MESH_SANDBOX_DEFAULT_INSTRUCTIONS, MESH_SANDBOX_DEFAULT_MEMORY,
        MESH_SANDBOX_DEFAULT_TIME_MS
    };
    if (limits && limits->instructions > 0)
        l.instructions = limits->instructions;
    if (limits && limits->memory > 0)
        l.memory = limits->memory;
    if (limits && limits->time_ms > 0)
        l.time_ms = limits->time_ms;
    return l;
}

//  --------------------------------------------------------------------------------
//  Loading

//  Lua prints the chunk as its basename; a load message names the file as configured.
static char *
s_load_message (const mesh_sandbox_t *self, const char *msg)
{
    const char *base = s_basename (self->path);
    size_t len = strlen (base);
    if (strncmp (msg, base, len) == 0 && msg [len] == ':')
        return s_format ("%s%s", self->path, msg + len);
    return s_format ("%s: %s", self->path, msg);
}

mesh_sandbox_t *
mesh_sandbox_load_buffer (const char *path, const char *source, size_t size,
                          const mesh_sandbox_limits_t *limits, char **err)
{
    assert (path);
    if (err)
        *err = NULL;
    if (size > MESH_SANDBOX_MAX_SOURCE) {
        s_fail (err, "%s: rule file is larger than %d KiB", path, MESH_SANDBOX_MAX_SOURCE / 1024);
        return NULL;
    }
    if (memchr (source, 0, size)) {
        s_fail (err, "%s: rule file contains a NUL byte; rules are Lua text", path);
        return NULL;
    }
    mesh_sandbox_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_fail (err, "%s: out of memory", path);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->path = strdup (path);
    self->source = malloc (size + 1);
    if (!self->path || !self->source) {
        s_fail (err, "%s: out of memory", path);
        mesh_sandbox_destroy (&self);
        return NULL;
    }
    memcpy (self->source, source, size);
    self->source [size] = 0;
    self->size = size;
    self->limits = s_limits (limits);

    //  Run the top level once, in a state of its own, to see that it is a rule.
    mesh_sandbox_t *rules[] = { self };
    mesh_vm_t *vm = mesh_vm_new (rules, 1, &self->limits);
    char *problem = NULL;
    if (!vm)
        problem = strdup ("out of memory");
    else
    if (mesh_vm_probe (vm, 0, &self->name, &self->description, &problem) == 0) {
        mesh_vm_destroy (&vm);
        return self;
    }
    mesh_vm_destroy (&vm);
    char *msg = NULL;
    if (problem && strncmp (problem, "the rule hit its ", 17) == 0)
        msg = s_format ("%s: loading the rule hit its %s", path, problem + 17);
    else
        msg = s_load_message (self, problem ? problem : "out of memory");
    s_fail (err, "%s", msg ? msg : "out of memory");
    free (msg);
    free (problem);
    mesh_sandbox_destroy (&self);
    return NULL;
}

mesh_sandbox_t *
mesh_sandbox_load (const char *path, const mesh_sandbox_limits_t *limits, char **err)
{
    assert (path);
    if (err)
        *err = NULL;
    //  O_NONBLOCK: a FIFO in place of a rule must not hang the loader.
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        s_fail (err, "%s: cannot open rule file: %s", path, strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        s_fail (err, "%s: not a regular file", path);
        close (fd);
        return NULL;
    }
    if (st.st_mode & S_IWOTH) {
        s_fail (err, "%s: rule file is world-writable; anyone could change the gate "
                     "(chmod o-w)", path);
        close (fd);
        return NULL;
    }
    if (st.st_size > MESH_SANDBOX_MAX_SOURCE) {
        s_fail (err, "%s: rule file is larger than %d KiB", path, MESH_SANDBOX_MAX_SOURCE / 1024);
        close (fd);
        return NULL;
    }
    //  Read at most one byte more than allowed: the file may have grown since fstat.
    char *buffer = malloc (MESH_SANDBOX_MAX_SOURCE + 1);
    size_t size = 0;
    while (buffer && size <= MESH_SANDBOX_MAX_SOURCE) {
        ssize_t n = read (fd, buffer + size, MESH_SANDBOX_MAX_SOURCE + 1 - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s_fail (err, "%s: cannot read rule file: %s", path, strerror (errno));
            free (buffer);
            close (fd);
            return NULL;
        }
        if (n == 0)
            break;
        size += (size_t) n;
    }
    close (fd);
    if (!buffer) {
        s_fail (err, "%s: out of memory", path);
        return NULL;
    }
    mesh_sandbox_t *self = mesh_sandbox_load_buffer (path, buffer, size, limits, err);
    free (buffer);
    return self;
}

void
mesh_sandbox_destroy (mesh_sandbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_sandbox_t *self = *self_p;
    mesh_vm_destroy (&self->vm);
    pthread_mutex_destroy (&self->lock);
    free (self->path);
    free (self->source);
    free (self->name);
    free (self->description);
    free (self);
    *self_p = NULL;
}

const char *
mesh_sandbox_name (const mesh_sandbox_t *self)
{
    assert (self);
    return self->name;
}

const char *
mesh_sandbox_description (const mesh_sandbox_t *self)
{
    assert (self);
    return self->description;
}

const char *
mesh_sandbox_path (const mesh_sandbox_t *self)
{
    assert (self);
    return self->path;
}

const mesh_sandbox_limits_t *
mesh_sandbox_limits (const mesh_sandbox_t *self)
{
    assert (self);
    return &self->limits;
}

const char *
mesh_sandbox_source (const mesh_sandbox_t *self, size_t *size_p)
{
    assert (self);
    if (size_p)
        *size_p = self->size;
    return self->source;
}

mesh_verdict_t
mesh_sandbox_eval (mesh_sandbox_t *self, json_t *proposal, json_t *ctx, char **reason_p)
{
    return mesh_sandbox_eval_ex (self, proposal, ctx, reason_p, NULL);
}

mesh_verdict_t
mesh_sandbox_eval_ex (mesh_sandbox_t *self, json_t *proposal, json_t *ctx, char **reason_p,
                      char **approval_p)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    if (!self->vm) {
        mesh_sandbox_t *rules[] = { self };
        self->vm = mesh_vm_new (rules, 1, &self->limits);
    }
    mesh_verdict_t verdict;
    char *reason = NULL, *approval = NULL;
    if (self->vm)
        verdict = mesh_vm_eval_one (self->vm, 0, proposal, ctx, &reason, &approval);
    else {
        verdict = MESH_VERDICT_ERROR;
        reason = strdup ("out of memory");
    }
    pthread_mutex_unlock (&self->lock);
    if (reason_p)
        *reason_p = reason;
    else
        free (reason);
    if (approval_p)
        *approval_p = approval;
    else
        free (approval);
    return verdict;
}

const char *
mesh_verdict_name (mesh_verdict_t verdict)
{
    switch (verdict) {
        case MESH_VERDICT_ACCEPT: return "accept";
        case MESH_VERDICT_REJECT: return "reject";
        case MESH_VERDICT_ERROR:  return "error";
        case MESH_VERDICT_LIMIT:  return "limit";
    }
    return "error";
}
