/* notify.c: the sending side of the store's change channel (issue 15):
 * PostgreSQL NOTIFY through the backend interface. A write's table-version
 * bumps and membership writes are sent inside its own transaction, just
 * before COMMIT (rg_st_channel_notes, from tx.c), so a listener receives
 * them if and only if the write committed, and after it; a message of its
 * own (a revocation) goes in a transaction of its own. The listening side
 * is listen_pg.c. SQLite has no channel. */
#include <stdio.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

int rg_store_channel_supported(const rg_store *s)
{
    return s && rg_st_target_is_pg(s->path);
}

int rg_store_channel_on_write(rg_store *s, const char *channel, const char *members_payload)
{
    if (!s)
        return RG_EINVAL;
    if (!channel) {
        s->notify_chan[0] = s->notify_members[0] = '\0';
        return 0;
    }
    if (!rg_store_channel_supported(s) || !*channel ||
        strlen(channel) >= sizeof s->notify_chan || !members_payload || !*members_payload ||
        strlen(members_payload) >= sizeof s->notify_members)
        return RG_EINVAL;
    snprintf(s->notify_members, sizeof s->notify_members, "%s", members_payload);
    snprintf(s->notify_chan, sizeof s->notify_chan, "%s", channel);
    return 0;
}

static int notify(st_db *db, const char *channel, const char *payload, rg_error *err)
{
    /* pg_notify: channel and payload as values (no identifier quoting);
     * PostgreSQL folds identical messages of one transaction into one */
    return rg_st_exec_later(db, err, "SELECT pg_notify(?, ?)", "ss", channel, payload);
}

int rg_st_channel_notes(st_tx *tx, rg_error *err)
{
    rg_store *s = tx->s;
    int rc = 0;
    if (tx->dirty_env)
        rc = notify(tx->db, s->notify_chan, "*", err);   /* every table inherits it */
    else
        for (size_t i = 0; !rc && i < tx->ndirty; i++)
            rc = notify(tx->db, s->notify_chan, tx->dirty[i], err);
    if (!rc && tx->members_dirty)
        rc = notify(tx->db, s->notify_chan, s->notify_members, err);
    return rc ? rg_st_rc(err) : 0;
}

typedef struct send_arg {
    const char *channel, *payload;
} send_arg;

static int send_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const send_arg *a = arg;
    (void)out;
    return notify(tx->db, a->channel, a->payload, err) ? rg_st_rc(err) : 0;
}

int rg_store_channel_send(rg_store *s, const char *channel, const char *payload,
                          rg_error *err)
{
    if (!rg_store_channel_supported(s) || !channel || !*channel || strlen(channel) > 63 ||
        !payload || strlen(payload) > RG_STORE_CHANNEL_MAX)
        return rg_error_set(err, RG_EINTERNAL, "store_error", NULL,
                            "no change channel for this message");
    send_arg a = {channel, payload};
    /* a read transaction of the runner: NOTIFY changes no row, and a
     * revocation must not wait behind this process's writers */
    return rg_st_read(s, send_tx, &a, NULL, err);
}
