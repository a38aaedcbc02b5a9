/*  charge - the charging rules (see charge.h).  */
#include "charge.h"

#include <string.h>

mesh_charge_t
mesh_charge (int rc, mesh_fail_t why, const mesh_backend_reply_t *reply, bool truncated,
             long prompt_estimate, long reserved)
{
    mesh_charge_t out = {0, "refused", true};
    long arrived = prompt_estimate + mesh_backend_estimate_tokens (reply->received_bytes);
    if (rc == 0) {
        long used = reply->prompt_tokens + reply->completion_tokens;
        out.estimated = reply->estimated;
        out.rule = reply->estimated ? "estimate" : "usage";
        out.charged = used;
        if (truncated) {
            //  Cut by length: the whole reservation, or what the server said if more.
            out.rule = "reservation";
            out.charged = used > reserved ? used : reserved;
            out.estimated = used <= reserved;
        }
        return out;
    }
    //  Nothing was generated: not connected, an error status (4xx, 5xx: refused before
    //  any generation), or a whole answer that is an error.
    if (!reply->sent || reply->http_status >= 400 || reply->answered_error)
        return out;
    //  The request was sent and what came back is unusable or missing: the server may
    //  have generated all it was allowed to.
    out.rule = "reservation";
    out.charged = arrived > reserved ? arrived : reserved;
    return out;
}
