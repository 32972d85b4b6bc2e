/* jobs.c: the deletion jobs of R20/R23. A deleted role is already gone from
 * tables; its job moves the memberships that still hold it, a batch per
 * transaction with the progress (cursor) recorded in the job row, so a crash
 * loses at most the batch in flight and the next run resumes (R23). The last
 * step removes the role row and marks the job done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"
#include "dsync_impl.h"

/* The role a job moves memberships off. */
typedef struct deleted_role { const char *id, *slug; } deleted_role;

/* R20 for one membership holding the deleted role: single-role: the
 * default; multiple: the role removed; R13: none left: the default. */
static int move_off_role(st_db *db, const st_om_row *row, const rg_role_table *t,
                         const rg_slugs *cur, void *arg, rg_error *err)
{
    const deleted_role *d = arg;
    rg_slugs next = {0};
    rg_role_source src = rg_core_source_parse(row->source);
    int changed = rg_core_roles_after_delete(t, (const char *const *)cur->v, cur->n, d->slug,
                                             &next, &src);
    if (changed < 0)
        return rg_st_oom(err);
    if (changed == 0)
        return rg_st_exec(db, err,
                          "DELETE FROM membership_roles WHERE membership_id = ? AND role_id = ?",
                          "ss", row->id, d->id);
    int rc = rg_st_membership_write(db, row->id, row->org, (const char *const *)next.v, next.n,
                                    rg_core_source_name(src), err);
    rg_slugs_clear(&next);
    json_t *m = NULL;
    if (rc == 0 && (!(m = rg_st_membership_json(db, row->id, err)) ||
                    rg_st_event(db, "organization_membership.updated", m, err)))
        rc = rg_st_rc(err);
    return rc;
}

/* One batch of the oldest pending job. Returns the rows processed (0 when a
 * job finished or there is nothing to do: *idle says which), or negative. */
static long job_batch(st_db *db, size_t limit, int *idle, rg_error *err)
{
    char job[ST_ID], role[ST_ID], cursor[ST_ID];
    *idle = 0;
    char kind[32] = "";
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT id, role_id, cursor, kind FROM jobs"
                                  " WHERE status = 'pending' ORDER BY id LIMIT 1"
                                  /* one instance per job at a time; the
                                   * others take the next or none */
                                  " /* pg: FOR UPDATE SKIP LOCKED */", "");
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        snprintf(job, sizeof job, "%s", rg_st_col(st, 0));
        snprintf(role, sizeof role, "%s", rg_st_col(st, 1));
        snprintf(cursor, sizeof cursor, "%s", rg_st_col(st, 2));
        snprintf(kind, sizeof kind, "%s", rg_st_col(st, 3));
    }
    st_finalize(st);
    if (rc <= 0) {
        *idle = rc == 0;
        return rc;
    }
    if (!strcmp(kind, "directory_delete"))   /* R31: role_id holds the directory */
        return rg_st_dsync_job_batch(db, job, role, limit, err);
    char ts[ST_TS];
    rg_st_now(ts);
    char slug[RG_SLUG_MAX + 1];
    if ((rc = rg_st_text(db, err, slug, sizeof slug, "SELECT slug FROM roles WHERE id = ?", "s",
                         role)) < 0)
        return rc;
    if (rc == 0)   /* gone with its organization */
        return rg_st_exec(db, err, "UPDATE jobs SET status = 'done', updated_at = ? WHERE id = ?",
                          "ss", ts, job);
    st = rg_st_prep(db, err,
                    "SELECT m.id, m.organization_id, m.role_source FROM membership_roles mr"
                    " JOIN memberships m ON m.id = mr.membership_id"
                    " WHERE mr.role_id = ? AND m.id > ? ORDER BY m.id LIMIT ?",
                    "ssI", role, cursor, (int64_t)limit);
    if (!st)
        return rg_st_rc(err);
    st_om_row *rows = NULL;
    size_t n = 0;
    if ((rc = rg_st_om_rows(db, st, limit, &rows, &n, err)))
        return rc;
    if (n == 0) {
        free(rows);
        int64_t left = 0;
        if (rg_st_int(db, err, &left, "SELECT count(*) FROM membership_roles WHERE role_id = ?",
                      "s", role) != 1)
            return rg_st_rc(err);
        if (left)   /* someone behind the cursor: sweep again from the start */
            return rg_st_exec(db, err, "UPDATE jobs SET cursor = '', updated_at = ? WHERE id = ?",
                              "ss", ts, job);
        /* R20 done: the role row goes (its permissions with it) */
        if (rg_st_exec(db, err, "DELETE FROM roles WHERE id = ?", "s", role) ||
            rg_st_exec(db, err, "UPDATE jobs SET status = 'done', updated_at = ? WHERE id = ?",
                       "ss", ts, job))
            return rg_st_rc(err);
        rg_log(RG_LOG_INFO, "store=job_done job=%s role=%s", job, role);
        return 0;
    }
    deleted_role d = { role, slug };
    rc = rg_st_om_each(db, rows, n, move_off_role, &d, err);
    if (rc == 0)
        rc = rg_st_exec(db, err,
                        "UPDATE jobs SET cursor = ?, processed = processed + ?, updated_at = ?"
                        " WHERE id = ?", "sIss", rows[n - 1].id, (int64_t)n, ts, job);
    free(rows);
    return rc ? rc : (long)n;
}

/* One batch in one write transaction. */
typedef struct batch_arg { size_t limit; int idle; long n; } batch_arg;

static int batch_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    batch_arg *a = arg;
    a->n = job_batch(tx->db, a->limit, &a->idle, err);
    return a->n < 0 ? (int)a->n : 0;
}

static int pending_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    int rc = rg_st_int(tx->db, err, arg, "SELECT count(*) FROM jobs WHERE status = 'pending'",
                       "");
    return rc < 0 ? rc : 0;
}

long rg_store_jobs_run(rg_store *s, size_t batch_rows, size_t stop_after_rows, long *left,
                       rg_error *err)
{
    if (left)
        *left = 0;
    if (pthread_mutex_trylock(&s->jobs_lock)) {   /* another runner is at it */
        if (left)
            *left = rg_store_jobs_pending(s, err);
        return 0;
    }
    /* a batch runs alone (no other writer of any instance beside it): the
     * look for work is a read, so an idle look stops no writer; when there
     * is none, that read is *left too */
    int64_t pending = 0;
    int prc = rg_st_read(s, pending_fn, &pending, NULL, err);
    if (prc || pending == 0) {
        pthread_mutex_unlock(&s->jobs_lock);
        return prc ? prc : 0;
    }
    if (batch_rows == 0)
        batch_rows = 100;
    long total = 0;
    for (;;) {
        size_t limit = batch_rows;
        if (stop_after_rows) {
            if ((size_t)total >= stop_after_rows)
                break;   /* test hook: stop here as a crash would (R23) */
            if (stop_after_rows - (size_t)total < limit)
                limit = stop_after_rows - (size_t)total;
        }
        batch_arg a = { limit, 0, 0 };
        int rc = rg_st_write_alone(s, batch_fn, &a, NULL, err);
        if (rc) {
            total = rc;
            break;
        }
        if (a.idle)
            break;
        total += a.n;
    }
    pthread_mutex_unlock(&s->jobs_lock);
    if (left && total >= 0)
        *left = rg_store_jobs_pending(s, err);   /* another instance's, or new ones */
    return total;
}

long rg_store_jobs_pending(rg_store *s, rg_error *err)
{
    int64_t n = 0;
    int rc = rg_st_read(s, pending_fn, &n, NULL, err);
    return rc ? rc : (long)n;
}
