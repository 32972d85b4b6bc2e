/* main.c: the rolegate command line: the usage and per-command help, the
 * dispatch of `serve` (serve.c), `keygen` (the session layer's key tool),
 * `check-config FILE` (validates a config file and prints FILE:LINE:
 * option: problem for each error; --list: every option and its variable),
 * `store copy FROM TO` (the store layer's rg_store_copy) and `--version`. */
#include <stdio.h>
#include <string.h>
#include "rolegate/config.h"
#include "rolegate/gateway.h"
#include "rolegate/session.h"
#include "rolegate/store.h"
#include "cli_internal.h"

void cli_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s <command> [options]\n"
            "  serve [-c FILE] [--demo]\n"
            "                       run the gateway (default config: " DEFAULT_CONFIG
            " if present, else built-in defaults; ROLEGATE_* variables override);\n"
            "                       --demo: a demo organization and fixture IdP on an empty store\n"
            "  keygen ...           session signing keys (see: keygen --help)\n"
            "  check-config [--env] FILE\n"
            "                       validate FILE (--env: and the ROLEGATE_* variables);\n"
            "                       exit 0 if valid, 2 with FILE:LINE: option: problem\n"
            "  check-config --list  every option and its ROLEGATE_<SECTION>_<OPTION> variable\n"
            "  store copy FROM TO   copy a whole store into an empty one (SQLite <-> PostgreSQL;\n"
            "                       FROM/TO: a path, sqlite:PATH or postgresql://...)\n"
            "  --version            rolegate's version and its libraries' versions\n"
            "  --help, CMD --help   this text, or one command's\n",
            prog);
}

/* `rolegate CMD --help` (issue 11 item 8): the command's text on stdout. */
int cli_help(const char *cmd)
{
    if (strcmp(cmd, "serve") == 0)
        printf("usage: rolegate serve [-c FILE] [--demo]\n"
               "  Runs the gateway: the public and admin listeners of the config.\n"
               "  -c, --config FILE  the config (default " DEFAULT_CONFIG
               " if present, else built-in\n"
               "                     defaults); ROLEGATE_<SECTION>_<OPTION> variables override\n"
               "  --demo             on an empty store: a demo organization and the fixture IdP\n"
               "  SIGHUP reopens the log; SIGTERM and SIGINT drain requests and exit 0.\n");
    else if (strcmp(cmd, "check-config") == 0)
        printf("usage: rolegate check-config [--env] FILE | --list\n"
               "  Validates FILE (with --env: and the ROLEGATE_* variables): exit 0 and\n"
               "  \"FILE: ok\", or exit 2 with one FILE:LINE: option: problem line per error.\n"
               "  --list: every option and its ROLEGATE_<SECTION>_<OPTION> variable.\n");
    else if (strcmp(cmd, "store") == 0)
        printf("usage: rolegate store copy FROM TO\n"
               "  Copies every table of the store FROM into the store TO, as stored (ids,\n"
               "  timestamps, event order, secrets), e.g. a SQLite file into PostgreSQL:\n"
               "    rolegate store copy var/rolegate.db postgresql://user:pw@host/rolegate\n"
               "  FROM/TO: what [store] database takes (a path, sqlite:PATH, postgresql://...).\n"
               "  FROM is only read (one snapshot) and must be at this rolegate's schema\n"
               "  version; TO is migrated, must be empty and is written in one transaction.\n"
               "  Stop the rolegates of both first. Prints each table's row count and the\n"
               "  total; exit 0, 2 when refused (TO not empty, schema version), 1 on error.\n");
    else
        return -1;
    return 0;
}

void cli_print_diag(const rg_config_diag *d)
{
    int shown = d->count < RG_CONFIG_MAX_ERRORS ? d->count : RG_CONFIG_MAX_ERRORS;
    for (int i = 0; i < shown; i++)
        fprintf(stderr, "%s\n", d->lines[i]);
    if (d->count > shown)
        fprintf(stderr, "... and %d more errors\n", d->count - shown);
}

/* check-config --list: every option and its environment override. */
static int list_options(void)
{
    rg_config_option o;
    for (size_t i = 0; rg_config_option_info(i, &o) == 0; i++) {
        char opt[128];
        snprintf(opt, sizeof opt, "%s.%s", o.section, o.name);
        printf("%-36s %s%s%s%s\n", opt, o.env, o.alias ? " alias " : "",
               o.alias ? o.alias : "", o.set_in_env ? " (set)" : "");
    }
    return 0;
}

static int cmd_check_config(int argc, char **argv)
{
    if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0))
        return cli_help("check-config");
    int with_env = argc == 4 && strcmp(argv[2], "--env") == 0;
    if (argc == 3 && strcmp(argv[2], "--list") == 0)
        return list_options();
    if (argc != 3 && !with_env) {
        cli_usage(stderr, argv[0]);
        return 2;
    }
    const char *file = argv[argc - 1];
    rg_config cfg;
    rg_config_diag diag;
    /* the file alone by default: the environment of the checking shell is not
     * the environment of the service; --env checks both, as serve reads them */
    if (rg_config_load(&cfg, file, with_env ? RG_CONFIG_ENV : 0, &diag) != 0) {
        cli_print_diag(&diag);
        return 2;
    }
    if (with_env) {
        rg_config_option o;
        for (size_t i = 0; rg_config_option_info(i, &o) == 0; i++)
            if (o.set_in_env)
                printf("environment: %s overrides %s.%s\n", o.env, o.section, o.name);
    }
    printf("%s: ok\n", file);
    return 0;
}

static void copy_line(const char *table, long rows, void *arg)
{
    *(long *)arg += rows;
    printf("%-26s %10ld\n", table, rows);
}

/* `store copy FROM TO`: rg_store_copy; 2 when refused, 1 on error. */
static int cmd_store(int argc, char **argv)
{
    if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0))
        return cli_help("store");
    if (argc != 5 || strcmp(argv[2], "copy") != 0) {
        fprintf(stderr, "usage: rolegate store copy FROM TO (rolegate help store)\n");
        return 2;
    }
    char from[512], to[512];
    rg_store_target_redact(argv[3], from, sizeof from);
    rg_store_target_redact(argv[4], to, sizeof to);
    rg_error err = {0};
    long total = 0;
    int rc = rg_store_copy(argv[3], argv[4], copy_line, &total, &err);
    if (rc) {
        fprintf(stderr, "rolegate store copy: %s (%s); nothing copied to %s\n", err.message,
                err.code, to);
        return rc == RG_ECONFLICT || rc == RG_EUNPROCESSABLE || rc == RG_EINVAL ? 2 : 1;
    }
    printf("%-26s %10ld\ncopied %s -> %s (schema version %d)\n", "total", total, from, to,
           RG_STORE_SCHEMA_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage(stderr, argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        return cli_serve(argc, argv);
    if (strcmp(argv[1], "keygen") == 0)   /* the session layer's key tool */
        return rg_session_cmd_keygen(argc - 1, argv + 1);
    if (strcmp(argv[1], "check-config") == 0)
        return cmd_check_config(argc, argv);
    if (strcmp(argv[1], "store") == 0)
        return cmd_store(argc, argv);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        rg_gateway_print_version(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc > 2 && strcmp(argv[2], "keygen") == 0) {
            char *kargv[] = {argv[2], (char *)"--help", NULL};
            return rg_session_cmd_keygen(2, kargv);
        }
        if (argc > 2 && cli_help(argv[2]) != 0) {
            fprintf(stderr, "rolegate: unknown command '%s'\n", argv[2]);
            return 2;
        }
        if (argc <= 2)
            cli_usage(stdout, argv[0]);
        return 0;
    }
    fprintf(stderr, "rolegate: unknown command '%s' (rolegate --help lists them)\n", argv[1]);
    return 2;
}
