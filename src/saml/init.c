/* init.c: process-wide SAML set-up. lasso_init registers GTypes without
 * locks and initialises libxml2 and xmlsec, so it runs once, before any
 * thread; lasso's GLib log domain and xmlsec's error callback are routed into
 * rg_log, shortened, since neither may spill a whole assertion (STYLE.md). */
#include <stdarg.h>
#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/logging.h>
#include <xmlsec/errors.h>
#include <string.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"

static int saml_ready;

/* lasso's own lasso_log formats every message it is given, stamps it with
 * localtime(3) (a stat of /etc/localtime each time) and hands it to g_log,
 * whatever the level; parsing one response emits about 300 debug lines
 * ("Processing node ..."): measured, a third of the time lasso took to
 * verify a response (tests/bench/bench_saml). liblasso calls lasso_log
 * through its PLT (objdump: 572 calls to lasso_log@plt), so this
 * definition in the executable takes its place: debug and info lines are
 * dropped before any formatting, the rest go to the "Lasso" GLib domain as
 * before (and from there to saml_log_glib). */
void lasso_log(GLogLevelFlags level, const char *filename, int line, const char *function,
               const char *format, ...) __attribute__((format(printf, 5, 6)));
void lasso_log(GLogLevelFlags level, const char *filename, int line, const char *function,
               const char *format, ...)
{
    (void)filename; (void)line; (void)function;
    if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING |
                   G_LOG_LEVEL_MESSAGE)))
        return;
    va_list ap;
    va_start(ap, format);
    g_logv("Lasso", level, format, ap);
    va_end(ap);
}

static void saml_log_glib(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                          gpointer data)
{
    (void)data;
    rg_log_level lvl = RG_LOG_DEBUG;
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        lvl = RG_LOG_ERROR;
    else if (level & G_LOG_LEVEL_WARNING)
        lvl = RG_LOG_WARN;
    else if (level & G_LOG_LEVEL_MESSAGE)
        lvl = RG_LOG_INFO;
    /* Lasso's warnings about rejected messages are expected on hostile input
     * and are reported by the caller with a reason code: keep them at debug. */
    if (lvl == RG_LOG_WARN)
        lvl = RG_LOG_DEBUG;
    char q[240];
    rg_log(lvl, "event=lasso_log domain=%s msg=%s", domain ? domain : "-",
           rg_log_quote(q, sizeof q, msg ? msg : ""));
}

static void saml_log_xmlsec(const char *file, int line, const char *func,
                            const char *obj, const char *subj, int reason, const char *msg)
{
    (void)file; (void)line; (void)obj;
    char q[200];
    rg_log(RG_LOG_DEBUG, "event=xmlsec_error func=%s subject=%s reason=%d msg=%s",
           func ? func : "-", subj ? subj : "-", reason,
           rg_log_quote(q, sizeof q, msg ? msg : ""));
}

int rg_saml_global_init(void)
{
    if (saml_ready)
        return 0;
    g_log_set_handler("Lasso", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
                      saml_log_glib, NULL);
    if (lasso_init() != 0) {
        rg_log(RG_LOG_ERROR, "event=saml_init_failed");
        return -1;
    }
    xmlSecErrorsSetCallback(saml_log_xmlsec);
    saml_ready = 1;
    return 0;
}

void rg_saml_global_shutdown(void)
{
    if (!saml_ready)
        return;
    lasso_shutdown();
    saml_ready = 0;
}
