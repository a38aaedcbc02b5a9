/*  fuzz_common - what the libFuzzer harnesses in tests/fuzz/ share.
 *
 *  Each harness (fuzz_<target>.c) feeds one parser of untrusted bytes through its
 *  public API.  Some parsers sit behind a file or a socket; this module gives them
 *  a private temporary directory, a file written from the input, and a loopback
 *  HTTP server that answers every request with the bytes the harness set, so the
 *  model-response parser is reached through a real libcurl call.  It also holds the
 *  one agent world (two actions, the shipped rules) the gate and the reasoning loop
 *  are fuzzed in.  Built only into build-fuzz/ (`make fuzz`).
 */
#ifndef MESH_FUZZ_COMMON_H
#define MESH_FUZZ_COMMON_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

//  Silence the log (the harnesses run millions of inputs) and ignore SIGPIPE.
void fuzz_quiet (void);
//  A private directory (0700, under /dev/shm if writable, else /tmp) made on first use and removed at exit; borrowed.
const char *fuzz_dir (void);
//  Write DATA to NAME inside fuzz_dir (0600, replaced).  Returns the path (borrowed,
//  valid until the next call with the same NAME) or aborts.
const char *fuzz_file (const char *name, const uint8_t *data, size_t size);
//  Start the loopback server once and return its base URL ("http://127.0.0.1:PORT").
const char *fuzz_http_url (void);
//  Every later request is answered with STATUS and BODY (copied).
void fuzz_http_answer (unsigned status, const uint8_t *body, size_t size);

//  The agent world: actions scale_out (service: pattern, length; replicas: integer
//  1..10) and escalate (summary: optional string), the shipped rules
//  rules/action_allowlist.lua and rules/confidence_floor.lua, and one openai backend
//  pointing at fuzz_http_url.  Built once; borrowed.  Run from the repository root.
typedef struct {
    mesh_config_t cfg;
    mesh_agent_config_t agent;
} fuzz_world_t;
fuzz_world_t *fuzz_world (void);

#endif
