/*  inflight - the per-life area shared by an agent and its supervisor (inflight.h).
 *
 *  Both sides use the same struct, compiled into the same library, so the layout is
 *  the same by construction; the header's magic and version catch an agent binary of
 *  another build.  The supervisor side never maps the area: it writes it once with
 *  pwrite before the spawn and reads it once with pread after the reap, into a local
 *  copy it then validates field by field.  Its size is sealed (F_SEAL_SHRINK,
 *  F_SEAL_GROW): the agent cannot make a later read short, and the agent's own mapping
 *  cannot fault.
 */
#include "inflight.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

bool
mesh_inflight_topic_valid (const char *topic, size_t len)
{
    if (len == 0 || len > 249)
        return false;
    if ((len == 1 && topic[0] == '.') || (len == 2 && topic[0] == '.' && topic[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = topic[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

//  --- supervisor side ---------------------------------------------------------------

int
mesh_inflight_create (const mesh_inflight_pos_t *marks, const bool *quarantined,
                      size_t count, const char **why)
{
    if (count > MESH_INFLIGHT_MARKS)
        count = MESH_INFLIGHT_MARKS;
    int fd = memfd_create ("mesh-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        *why = "memfd_create failed";
        return -1;
    }
    mesh_inflight_area_t *area = calloc (1, sizeof *area);
    area->magic = MESH_INFLIGHT_MAGIC;
    area->version = MESH_INFLIGHT_VERSION;
    area->slot_count = MESH_INFLIGHT_SLOTS;
    area->mark_count = (uint32_t) count;
    for (size_t i = 0; i < count; i++) {
        mesh_inflight_mark_t *m = &area->mark[i];
        size_t len = strnlen (marks[i].topic, sizeof m->topic - 1);
        memcpy (m->topic, marks[i].topic, len);
        m->topic_len = (uint16_t) len;
        m->partition = marks[i].partition;
        m->offset = marks[i].offset;
        m->quarantined = quarantined && quarantined[i];
    }
    ssize_t wrote = pwrite (fd, area, sizeof *area, 0);
    free (area);
    if (wrote != (ssize_t) sizeof *area) {
        close (fd);
        *why = "cannot write the in-flight area";
        return -1;
    }
    if (fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        close (fd);
        *why = "cannot seal the in-flight area";
        return -1;
    }
    return fd;
}

int
mesh_inflight_read (int fd, size_t mark_count, mesh_inflight_pos_t *busy, size_t *busy_count,
                    bool *survived, size_t *rejected, const char **why)
{
    *busy_count = 0;
    *rejected = 0;
    for (size_t i = 0; i < mark_count; i++)
        survived[i] = false;
    mesh_inflight_area_t *area = malloc (sizeof *area);
    ssize_t got = pread (fd, area, sizeof *area, 0);
    if (got != (ssize_t) sizeof *area) {
        free (area);
        *why = "the in-flight area cannot be read whole";
        return -1;
    }
    if (area->magic != MESH_INFLIGHT_MAGIC || area->version != MESH_INFLIGHT_VERSION) {
        free (area);
        *why = "the in-flight area's header was overwritten";
        return -1;
    }
    //  Counts are ours, not the area's: the agent may have written anything there.
    for (size_t i = 0; i < MESH_INFLIGHT_SLOTS; i++) {
        const mesh_inflight_slot_t *s = &area->slot[i];
        unsigned flag = atomic_load (&s->busy);
        if (flag == 0)
            continue;
        if (flag != 1 || s->topic_len > 249
            || !mesh_inflight_topic_valid (s->topic, s->topic_len) || s->partition < 0
            || s->offset < 0) {
            (*rejected)++;
            continue;
        }
        mesh_inflight_pos_t *p = &busy[(*busy_count)++];
        memcpy (p->topic, s->topic, s->topic_len);
        p->topic[s->topic_len] = 0;
        p->partition = s->partition;
        p->offset = s->offset;
    }
    for (size_t i = 0; i < mark_count && i < MESH_INFLIGHT_MARKS; i++)
        survived[i] = area->mark[i].survived == 1;
    free (area);
    return 0;
}

//  --- agent side ----------------------------------------------------------------------

struct _mesh_inflight_t {
    mesh_inflight_area_t *area;
    size_t marks;                       //  as written by the supervisor, bounded
    int holds[MESH_INFLIGHT_MARKS];     //  held and not yet done, per mark (consumer thread)
};

mesh_inflight_t *
mesh_inflight_attach (int fd, const char **why)
{
    struct stat st;
    if (fstat (fd, &st) != 0 || (size_t) st.st_size < sizeof (mesh_inflight_area_t)) {
        *why = "not an in-flight area (too small)";
        close (fd);
        return NULL;
    }
    void *map = mmap (NULL, sizeof (mesh_inflight_area_t), PROT_READ | PROT_WRITE, MAP_SHARED,
                      fd, 0);
    close (fd);
    if (map == MAP_FAILED) {
        *why = "cannot map the in-flight area";
        return NULL;
    }
    mesh_inflight_area_t *area = map;
    if (area->magic != MESH_INFLIGHT_MAGIC || area->version != MESH_INFLIGHT_VERSION
        || area->slot_count != MESH_INFLIGHT_SLOTS || area->mark_count > MESH_INFLIGHT_MARKS) {
        munmap (map, sizeof *area);
        *why = "not an in-flight area of this version";
        return NULL;
    }
    mesh_inflight_t *self = calloc (1, sizeof *self);
    self->area = area;
    self->marks = area->mark_count;
    return self;
}

void
mesh_inflight_destroy (mesh_inflight_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    munmap ((*self_p)->area, sizeof *(*self_p)->area);
    free (*self_p);
    *self_p = NULL;
}

void
mesh_inflight_set (mesh_inflight_t *self, int slot, const char *topic, int32_t partition,
                   int64_t offset)
{
    if (!self || slot < 0 || slot >= MESH_INFLIGHT_SLOTS)
        return;
    mesh_inflight_slot_t *s = &self->area->slot[slot];
    size_t len = strnlen (topic, sizeof s->topic - 1);
    //  Consecutive messages mostly come from one topic: copy its name only when it changed.
    if (s->topic_len != len || memcmp (s->topic, topic, len) != 0) {
        memcpy (s->topic, topic, len);
        s->topic_len = (uint32_t) len;
    }
    s->partition = partition;
    s->offset = offset;
    atomic_store_explicit (&s->busy, 1, memory_order_release);
}

void
mesh_inflight_clear (mesh_inflight_t *self, int slot)
{
    if (!self || slot < 0 || slot >= MESH_INFLIGHT_SLOTS)
        return;
    atomic_store_explicit (&self->area->slot[slot].busy, 0, memory_order_release);
}

//  The index of the mark at this position, or -1.
static int
s_mark (mesh_inflight_t *self, const char *topic, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < self->marks; i++) {
        const mesh_inflight_mark_t *m = &self->area->mark[i];
        if (m->offset == offset && m->partition == partition
            && m->topic_len < sizeof m->topic && strncmp (m->topic, topic, m->topic_len) == 0
            && topic[m->topic_len] == 0)
            return (int) i;
    }
    return -1;
}

bool
mesh_inflight_quarantined (mesh_inflight_t *self, const char *topic, int32_t partition,
                           int64_t offset)
{
    if (!self || !self->marks)
        return false;
    int i = s_mark (self, topic, partition, offset);
    return i >= 0 && self->area->mark[i].quarantined;
}

void
mesh_inflight_hold (mesh_inflight_t *self, const char *topic, int32_t partition,
                    int64_t offset)
{
    if (!self || !self->marks)
        return;
    int i = s_mark (self, topic, partition, offset);
    if (i >= 0)
        self->holds[i]++;
}

void
mesh_inflight_done (mesh_inflight_t *self, const char *topic, int32_t partition,
                    int64_t offset)
{
    if (!self || !self->marks)
        return;
    int i = s_mark (self, topic, partition, offset);
    if (i < 0)
        return;
    if (self->holds[i] > 0)
        self->holds[i]--;
    if (self->holds[i] == 0 && !self->area->mark[i].quarantined)
        self->area->mark[i].survived = 1;
}

size_t
mesh_inflight_marks (const mesh_inflight_t *self)
{
    return self ? self->marks : 0;
}
