/*  chunkscan - does a compiled chunk ever assign to an upvalue?
 *
 *  vm.c puts back, before each evaluation, the values of the top-level locals a
 *  rule's functions close over, so that a rule which assigns one (a counter, a
 *  "last seen") starts every decision from the top level's value.  Rules without
 *  debug, load or string.dump can change such a local only with the SETUPVAL
 *  instruction, so a chunk whose functions contain none needs nothing put back, and
 *  most rules are such chunks.
 *
 *  The answer comes from the chunk's own bytecode: lua_dump (stripped) of the
 *  chunk, walked as lundump.c reads it for Lua 5.4 (format 0), every instruction of
 *  every nested function checked.  Anything unexpected - another version or format,
 *  other sizes, a truncated dump - answers "yes", which only costs the putting back.
 */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_OP_SETUPVAL 10                //  lopcodes.h of Lua 5.4: MOVE=0 ... GETUPVAL=9
#define S_OP_MASK 0x7F                  //  the opcode: the low 7 bits of an instruction
#define S_MAX_DEPTH 200                 //  the parser's own limit on nested functions

typedef struct {
    unsigned char *data;
    size_t size, max;
} s_buffer_t;

typedef struct {
    const unsigned char *p, *end;
    bool bad;                           //  not what we expected: give up, answer yes
    bool found;
} s_reader_t;

static int
s_writer (lua_State *L, const void *chunk, size_t size, void *ud)
{
    s_buffer_t *b = ud;
    if (b->size + size > b->max) {
        size_t max = b->max ? b->max * 2 : 4096;
        while (max < b->size + size)
            max *= 2;
        unsigned char *data = realloc (b->data, max);
        if (!data)
            return 1;
        b->data = data;
        b->max = max;
    }
    memcpy (b->data + b->size, chunk, size);
    b->size += size;
    return 0;
}

static void
s_skip (s_reader_t *r, size_t n)
{
    if (r->bad || (size_t) (r->end - r->p) < n)
        r->bad = true;
    else
        r->p += n;
}

static unsigned
s_byte (s_reader_t *r)
{
    if (r->bad || r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

//  dumpSize: 7 bits per byte, most significant first, the last byte marked by 0x80.
static size_t
s_size (s_reader_t *r)
{
    size_t x = 0;
    for (int i = 0; i < 10; i++) {
        unsigned b = s_byte (r);
        if (r->bad)
            return 0;
        if (x > (SIZE_MAX >> 7)) {
            r->bad = true;
            return 0;
        }
        x = (x << 7) | (b & 0x7F);
        if (b & 0x80)
            return x;
    }
    r->bad = true;
    return 0;
}

static void
s_string (s_reader_t *r)
{
    size_t size = s_size (r);
    if (size > 0)
        s_skip (r, size - 1);
}

static void
s_function (s_reader_t *r, int depth)
{
    if (depth > S_MAX_DEPTH) {
        r->bad = true;
        return;
    }
    s_string (r);                       //  source
    s_size (r);                         //  linedefined
    s_size (r);                         //  lastlinedefined
    s_skip (r, 3);                      //  numparams, is_vararg, maxstacksize
    size_t code = s_size (r);
    if (r->bad || code > (size_t) (r->end - r->p) / 4) {
        r->bad = true;
        return;
    }
    for (size_t i = 0; i < code; i++) {
        uint32_t instruction;
        memcpy (&instruction, r->p + i * 4, 4);
        if ((instruction & S_OP_MASK) == S_OP_SETUPVAL)
            r->found = true;
    }
    s_skip (r, code * 4);
    size_t constants = s_size (r);
    for (size_t i = 0; i < constants && !r->bad; i++) {
        switch (s_byte (r)) {
            case 0: case 1: case 17:    //  nil, false, true
                break;
            case 3: case 19:            //  integer, float
                s_skip (r, 8);
                break;
            case 4: case 20:            //  short, long string
                s_string (r);
                break;
            default:
                r->bad = true;
        }
    }
    size_t upvalues = s_size (r);
    if (upvalues > (size_t) (r->end - r->p) / 3)
        r->bad = true;
    else
        s_skip (r, upvalues * 3);       //  instack, idx, kind
    size_t protos = s_size (r);
    for (size_t i = 0; i < protos && !r->bad; i++)
        s_function (r, depth + 1);
    //  Debug information: stripped, so four empty lists.
    for (int i = 0; i < 4; i++)
        if (s_size (r) != 0)
            r->bad = true;
}

bool
mesh_chunk_sets_upvalues (lua_State *L, int index)
{
    index = lua_absindex (L, index);
    if (lua_type (L, index) != LUA_TFUNCTION || lua_iscfunction (L, index))
        return true;
    s_buffer_t b = { 0 };
    lua_pushvalue (L, index);
    int failed = lua_dump (L, s_writer, &b, 1);
    lua_pop (L, 1);
    s_reader_t r = { .p = b.data, .end = b.data + b.size, .bad = failed != 0 || !b.data };
    static const unsigned char header[] = {
        0x1B, 'L', 'u', 'a', 0x54, 0, 0x19, 0x93, '\r', '\n', 0x1A, '\n', 4, 8, 8
    };
    if (!r.bad && b.size >= sizeof header + 16 && memcmp (b.data, header, sizeof header) == 0) {
        lua_Integer luac_int = 0x5678;
        lua_Number luac_num = 370.5;
        if (memcmp (b.data + sizeof header, &luac_int, 8) != 0
        ||  memcmp (b.data + sizeof header + 8, &luac_num, 8) != 0)
            r.bad = true;
        r.p += sizeof header + 16;
        s_byte (&r);                    //  the main function's upvalue count
        s_function (&r, 0);
        if (r.p != r.end)
            r.bad = true;
    }
    else
        r.bad = true;
    free (b.data);
    return r.bad || r.found;
}
