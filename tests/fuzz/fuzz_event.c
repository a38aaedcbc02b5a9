/*  fuzz_event - the event scanner (agents/event/event_json.c) on any bytes.
 *
 *  Through mesh_event_decode, the path every consumed Kafka message takes, with the
 *  demo's field map (key fields host and metric, value, ts).  Besides what ASan and
 *  UBSan catch, two properties abort: a message the decoder accepts must be a JSON
 *  object jansson accepts too (mesh_event_parse must build its tree), since an
 *  anomalous event is parsed again by jansson later; and the series it names must be
 *  free of control characters.
 */
#include "event_kafka.h"
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

static char *s_key_fields[] = { "host", "metric" };
static mesh_agent_config_t s_agent = {
    .name = "fuzz", .key_fields = s_key_fields, .key_field_count = 2,
    .value_field = "value", .time_field = "ts",
};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        fuzz_quiet ();
        ready = true;
    }
    //  A private copy of exactly SIZE bytes, so ASan sees any read past the end.
    char *payload = malloc (size ? size : 1);
    memcpy (payload, data, size);
    mesh_event_t event = { .topic = "metrics", .partition = 0, .offset = 1 };
    json_t *json = NULL;
    const char *why = NULL;
    int rc = mesh_event_decode (&s_agent, payload, size, &event, &json, &why);
    if (rc == 0) {
        for (const char *c = event.series; *c; c++)
            if ((unsigned char) *c < 0x20 || *c == 0x7f)
                abort ();
        if (!mesh_event_parse (&event) || !json_is_object (event.json))
            abort ();
        json_decref (event.json);
    }
    else
    if (!why)
        abort ();
    json_decref (json);
    free (payload);
    return 0;
}
