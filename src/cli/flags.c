/* The flag parser the `choria` commands share: a table of long flags into an options struct. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define FIRST_CODE 256

static bool parse_number(const char *s, bool fraction, double *out)
{
    char *end = NULL;
    double v = fraction ? strtod(s, &end) : (double)strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* Stores one flag's value; false when it is not acceptable. */
static bool store(const cli_flag *f, const char *arg, void *opts)
{
    void *dst = (char *)opts + f->offset;
    double v = 0;
    switch (f->kind) {
    case CLI_FLAG_STRING:
        *(const char **)dst = arg;
        return true;
    case CLI_FLAG_BOOL:
        *(bool *)dst = true;
        return true;
    case CLI_FLAG_PCT:
        if (!parse_number(arg, true, &v) || v < 0 || v > 100)
            return false;
        *(double *)dst = v;
        return true;
    case CLI_FLAG_INT:
    case CLI_FLAG_INT64:
        if (!parse_number(arg, false, &v) || v < (double)f->min || v > (double)f->max)
            return false;
        if (f->kind == CLI_FLAG_INT)
            *(int *)dst = (int)v;
        else
            *(int64_t *)dst = (int64_t)v * (f->scale > 0 ? f->scale : 1);
        return true;
    }
    return false;
}

/* getopt_long's table: the command's flags, then the shared broker flags. */
static struct option *long_options(const cli_flag *flags, size_t n, bool broker)
{
    struct option *o = calloc(n + 4, sizeof(*o));
    for (size_t i = 0; o != NULL && i < n; i++)
        o[i] = (struct option){flags[i].name,
                               flags[i].kind == CLI_FLAG_BOOL ? no_argument : required_argument,
                               NULL, FIRST_CODE + (int)i};
    if (o != NULL && broker) {
        o[n] = (struct option){"config", required_argument, NULL, CLI_OPT_CONFIG};
        o[n + 1] = (struct option){"server", required_argument, NULL, CLI_OPT_SERVER};
        o[n + 2] = (struct option){"debug", no_argument, NULL, CLI_OPT_DEBUG};
    }
    return o;
}

int cli_flags_parse(const char *command, const cli_flag *flags, size_t n, void *opts,
                    cli_broker_opts *broker, int argc, char **argv)
{
    struct option *o = long_options(flags, n, broker != NULL);
    int c, rc = 0;
    if (o == NULL) {
        fprintf(stderr, "choria: out of memory\n");
        return -1;
    }
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c >= FIRST_CODE && c < FIRST_CODE + (int)n) {
            if (!store(&flags[c - FIRST_CODE], optarg, opts)) {
                fprintf(stderr, "choria: invalid value '%s' for --%s, try 'choria %s --help'\n",
                        optarg, flags[c - FIRST_CODE].name, command);
                rc = -1;
            }
        } else if (broker == NULL || !cli_broker_option(c, optarg, broker)) {
            fprintf(stderr, "choria: try 'choria %s --help'\n", command);
            rc = -1;
        }
    }
    free(o);
    return rc == 0 ? optind : -1;
}
