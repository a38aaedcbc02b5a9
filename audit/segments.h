/*  segments - the decision log as a sequence of files: sealed segments, then the active log.
 *
 *  The ledger rotates the log (daemon/ledger.c, docs/audit.md "Segments and retention"):
 *  <log> is renamed to <log>.seg-<first seq, 12 digits> and a new <log> goes on with the
 *  next seq, chaining on the last record of the segment.  A reader therefore sees one log
 *  whose lines are the segments' lines in order of their first seq, then <log>'s.
 *
 *  mesh_segments_open gives exactly that as one FILE * (glibc fopencookie; one file open
 *  at a time, a 64 KiB buffer), so every reader of the log (the chain scanner, proofs,
 *  replay, the ledger's own check at open) works across segments without knowing of them.
 *  At each change of file it checks that the files join: a sealed segment ends with a
 *  newline, and the next file's first record has the seq after the previous file's last
 *  one (and the seq its name says).  A file that does not join ends the stream with a
 *  read error (errno EBADMSG) and a logged message naming the two files.
 */
#ifndef MESH_SEGMENTS_H
#define MESH_SEGMENTS_H

#include "merkle.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#define MESH_SEGMENTS_MAX 100000        //  sealed segments of one log, at most
#define MESH_SEGMENTS_HEX_SIZE 65       //  a SHA-256 in hex with its NUL

typedef struct {
    char *path;                         //  the segment's path (owned)
    const char *name;                   //  its file name (inside path)
    int64_t first_seq;                  //  from its name
} mesh_segment_t;

//  The sealed segments of LOG, sorted by first seq, into *SEGS_P (caller frees with
//  mesh_segments_free).  Returns their number (0: none, *segs_p NULL), or -1 (WHY) when
//  the directory cannot be read or two names give the same seq.
int mesh_segments_list (const char *log, mesh_segment_t **segs_p, char *why, size_t why_size);
void mesh_segments_free (mesh_segment_t **segs_p, int count);

//  Where the kept log starts: <log>.retained, written by the ledger before it removes
//  segments (docs/audit.md).  Without that file the log starts at seq 1 after 64 zeros
//  with the empty tree.
typedef struct {
    int64_t first_seq;                  //  K: the first record kept
    char prev_hash[MESH_SEGMENTS_HEX_SIZE];    //  the hash of record K-1 (64 zeros: K = 1)
    mesh_merkle_range_t range;          //  the compact range of leaves 0..K-2 (size K-1)
    json_t *removed;                    //  [{"file","first_seq","last_seq","sha256"}...]
                                        //  (owned; an empty array without the file)
} mesh_segments_start_t;

//  Read <LOG>.retained into *START.  1 read, 0 no such file (START = the defaults), -1 it
//  is malformed or unreadable (WHY; START = the defaults).  Free with
//  mesh_segments_start_free.
int mesh_segments_start (const char *log, mesh_segments_start_t *start, char *why,
                         size_t why_size);
void mesh_segments_start_free (mesh_segments_start_t *start);
//  *START as the JSON of <log>.retained (caller decrefs).
json_t *mesh_segments_start_json (const mesh_segments_start_t *start);

//  One FILE * reading every sealed segment of LOG and then LOG itself (which may be
//  missing when there are segments: a crash just after a rotation).  Segments wholly
//  before the first kept record (<log>.retained; a retention cut short by a crash) are
//  skipped, and the first file read must start at that record.  NULL when LOG and every
//  segment are missing (errno ENOENT), or the segments cannot be listed or <log>.retained
//  read (errno EBADMSG, logged).
FILE *mesh_segments_open (const char *log);

//  The seq and ts of the first record of the file PATH, from its first bytes
//  (`{"seq":N,"prev":"<64 hex>","ts":T`).  1 found, 0 empty or missing, -1 not readable
//  as a record.
int mesh_segments_first (const char *path, int64_t *seq_p, int64_t *ts_p);

//  SHA-256 of the whole file PATH as 64 hex digits into HEX (65 bytes) and its size into
//  *SIZE_P (may be NULL).  0, or -1 (errno).
int mesh_segments_sha256 (const char *path, char *hex, uint64_t *size_p);

#endif
