/* events.c: the event log of R26: emitting the events that are not a store
 * change (authentication.failed, session.created, ...) and listing events
 * oldest first with cursor pagination (list_metadata.after null on the last
 * page). Store changes insert their own events through rg_st_event. */
#include <string.h>
#include "store_impl.h"

/* R26: every event name rolegate emits */
static const char *const event_names[] = {
    "permission.created", "permission.updated", "permission.deleted",
    "role.created", "role.updated", "role.deleted",
    "organization_role.created", "organization_role.updated", "organization_role.deleted",
    "organization_membership.created", "organization_membership.updated",
    "organization_membership.deleted",
    "organization.created", "organization.updated", "organization.deleted",
    "user.created", "user.deleted",
    "connection.created", "connection.updated", "connection.deleted",
    "environment.updated", "role_priority.updated", "session.created",
    "authentication.succeeded", "authentication.failed",
    "directory.created", "directory.deleted",
    "dsync.user.created", "dsync.user.updated", "dsync.user.deleted",
    "dsync.group.created", "dsync.group.updated", "dsync.group.deleted",
    "dsync.group.user_added", "dsync.group.user_removed",
};

static int known_event(const char *name)
{
    for (size_t i = 0; name && i < sizeof event_names / sizeof *event_names; i++)
        if (!strcmp(name, event_names[i]))
            return 1;
    return 0;
}

typedef struct emit_arg { const char *event; json_t *data; } emit_arg;

static int emit_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const emit_arg *a = arg;
    return rg_st_event(tx->db, a->event, json_incref(a->data), err);
}

int rg_store_event_emit(rg_store *s, const char *event, const json_t *data, rg_error *err)
{
    if (!known_event(event))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "event",
                            "'%.64s' is not an event name (R26)", event ? event : "(null)");
    if (data && !json_is_object(data))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "data",
                            "event data must be a JSON object");
    json_t *copy = data ? json_deep_copy(data) : json_object();
    if (!copy)
        return rg_st_oom(err);
    emit_arg a = { event, copy };
    int rc = rg_st_write(s, emit_fn, &a, NULL, err);
    json_decref(copy);
    return rc;
}

static json_t *event_row(st_stmt *st)
{
    json_t *data = json_loads(rg_st_col(st, 2), 0, NULL);
    return json_pack("{s:s,s:s,s:s,s:o,s:s}", "object", "event", "id", rg_st_col(st, 0),
                     "event", rg_st_col(st, 1), "data", data ? data : json_object(),
                     "created_at", rg_st_col(st, 3));
}

static json_t *event_json(st_db *db, const char *id, rg_error *err)
{
    return rg_st_object(db, "SELECT id, event, data, created_at FROM events WHERE id = ?", id,
                        event_row, -1, "event", err);
}

int rg_store_event_list(rg_store *s, const char *event_name, const rg_store_list_opts *o,
                        json_t **out, rg_error *err)
{
    /* seq, not the id, orders events: ids from several processes in the same
     * millisecond need not sort in insertion order */
    st_list_q q = { "events", "seq", event_name ? "event = ?" : "", event_name, NULL, o, 0,
                    event_json, NULL };
    return rg_st_read_list(s, &q, out, err);
}
