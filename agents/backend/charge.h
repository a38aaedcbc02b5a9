/*  charge - what one model call costs: the charging rules, in one place.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record
 *  (the loop settles every reservation with what this says).
 *
 *      rule         when                                                  charged
 *      usage        the server answered and reported usage                 its prompt + completion
 *      estimate     it answered without usage                              prompt estimate + text/4
 *      reservation  no answer in time, a body cut mid-transfer, a request   the reservation (or what
 *                   sent and no reply, a 2xx we cannot read, an answer      arrived, /4, if more),
 *                   over the transport cap, cut by length                  or the usage if more
 *      refused      nothing was generated: not connected, a pre-check       0
 *                   refused it (circuit open, context, model not listed),
 *                   the server answered with an error status (4xx, 5xx,
 *                   429, 503), or its answer was an error before any token
 *
 *  Every HTTP request the server received counts: a backend reports how many it sent
 *  (libcurl's silent resends are switched off, agents/backend/backend_http.c), and
 *  re-sends only requests that cost nothing (not connected, refused with a status), so
 *  the last request decides the charge.
 */
#ifndef MESH_CHARGE_H
#define MESH_CHARGE_H

#include "backend.h"
#include "fail.h"

typedef struct {
    long charged;
    const char *rule;               //  "usage", "estimate", "reservation", "refused"
    bool estimated;
} mesh_charge_t;

//  The charge of one call: RC and WHY as mesh_backend_call returned them, REPLY what it
//  filled, TRUNCATED whether the answer stopped for another reason than a stop (the
//  loop's check), PROMPT_ESTIMATE and RESERVED what the loop reserved.
mesh_charge_t mesh_charge (int rc, mesh_fail_t why, const mesh_backend_reply_t *reply,
                           bool truncated, long prompt_estimate, long reserved);

#endif
