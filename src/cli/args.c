/* args.c — option values for the subcommands: a value that is not wholly a number in
 * its range is an error the command reports with the option's name, never a silent
 * default (atoi("abc") is 0, strtof("1.5x") is 1.5). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>

#include "cli/cli.h"

int cli_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int cli_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_float(const char *s, double lo, double hi, float *out)
{
    double v;
    if (cli_double(s, lo, hi, &v)) return -1;
    *out = (float)v;
    return 0;
}

int cli_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-') return -1; /* strtoull would wrap "-1" to 2^64-1 */
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) return -1;
    *out = (uint64_t)v;
    return 0;
}

const char *cli_optname(char **argv)
{
    /* "--temp 1.5x": optarg is its own word after the option; "--temp=1.5x", "-n5":
     * the option and its value are one word. */
    return optind >= 2 && argv[optind - 1] == optarg ? argv[optind - 2] : argv[optind - 1];
}
