/*  event - one decoded input message.  Data path: [event] -> detect -> incident ->
 *  reason -> gate -> act -> record.
 *
 *  Plain data, filled by event_kafka.c (or a test) and borrowed by the later stages
 *  for the duration of one message.  `json` is the decoded message, made only when a
 *  stage needs it (mesh_event_parse in event_kafka.h); `raw` is always there.
 */
#ifndef MESH_EVENT_H
#define MESH_EVENT_H

#include <jansson.h>
#include <stdint.h>

#define MESH_SERIES_KEY_MAX 256

typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    char series[MESH_SERIES_KEY_MAX];   //  key field values joined with '/', e.g. "web-1/cpu"
    double value;
    int64_t ts_ms;                      //  event time, epoch milliseconds
    json_t *json;                       //  the whole message once parsed (mesh_event_parse)
    const char *raw;                    //  the message bytes, borrowed
    size_t raw_len;
} mesh_event_t;

#endif
