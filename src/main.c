/* main.c: the rolegate command line. Placeholder until the config and server
 * land: prints usage. */
#include <stdio.h>
int main(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "usage: %s serve|check-config|keygen\n", argv[0]);
    return 2;
}
