/* cli_internal.h: what the command line's files (main.c, serve.c) share
 * and nobody else sees: the default config path, the usage and help texts
 * and the config diagnostics printer (main.c), and `serve` (serve.c). */
#ifndef ROLEGATE_CLI_INTERNAL_H
#define ROLEGATE_CLI_INTERNAL_H

#include <stdio.h>
#include "rolegate/config.h"

#define DEFAULT_CONFIG "etc/rolegate.conf"

/* The usage of every command, on out. */
void cli_usage(FILE *out, const char *prog);
/* `rolegate CMD --help` (issue 11 item 8): the command's text on stdout;
 * 0, or -1 for a command without one. */
int cli_help(const char *cmd);
/* A config's error lines on stderr (at most RG_CONFIG_MAX_ERRORS). */
void cli_print_diag(const rg_config_diag *d);
/* `rolegate serve [-c FILE] [--demo]`: the exit code. */
int cli_serve(int argc, char **argv);

#endif
