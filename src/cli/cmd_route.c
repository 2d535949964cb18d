/* cmd_route.c — `switchyard route`: explain routing decisions offline.
 *
 * Reads a chat completion request (JSON) on stdin, or one per line with --jsonl,
 * and runs the server's decision path on it (cli/decider.h: the same parsing,
 * api_decide() and router_decide(), tiers from the config, every tier taken as
 * healthy, sessions' private marks from the config's store). Prints what POST
 * /v1/route answers: the decision with its reasons, the HTTP status the request
 * would get and, when refused, the message. No request is sent anywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "cli/cli.h"
#include "cli/decider.h"

static void route_usage(FILE *f)
{
    fprintf(f, "usage: switchyard route -c FILE [--jsonl] [--store URL|none] < request.json\n\n"
               "Prints the routing decision for a chat completion request read on stdin, as\n"
               "POST /v1/route answers it: tier, eligible order, PII types, capabilities,\n"
               "reasons, status. Nothing is sent upstream.\n\n"
               "  --jsonl         one request per line in, one answer per line out\n"
               "  --store URL     read sessions' private marks from this store (default: the\n"
               "                  config's store: key when it exists; none: no session store)\n\n"
               "Exit status: 0 served, 3 refused (single request), 1 error, 2 usage.\n");
}

/* Decides one body and prints the answer line. Returns the HTTP status or < 0. */
static int route_one(cli_decider_t *x, const char *body, size_t len, uint64_t seed, buf_t *out)
{
    route_decision_t d;
    buf_reset(out);
    int st = cli_decider_run(x, body, len, seed, &d, out);
    if (st < 0) {
        fprintf(stderr, "switchyard route: router failed: %d\n", st);
        return st;
    }
    fwrite(out->data, 1, out->len, stdout);
    fputc('\n', stdout);
    return st;
}

int cmd_route(int argc, char **argv)
{
    const char *path = NULL, *store = NULL;
    bool jsonl = false;
    if (cli_wants_help(argc, argv)) {
        route_usage(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--store") && i + 1 < argc) {
            store = argv[++i];
            if (!strcmp(store, "none")) store = "";
        } else if (!strcmp(argv[i], "--jsonl"))
            jsonl = true;
        else {
            fprintf(stderr, "switchyard route: unknown argument '%s'\n", argv[i]);
            route_usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "switchyard route: -c FILE is required\n");
        return 2;
    }
    cli_decider_t x;
    if (cli_decider_open(&x, "switchyard route", path, NULL, store)) return 1;
    buf_t body, out;
    buf_init(&body, x.cfg.max_body_bytes + 1);
    buf_init(&out, 16u << 20);
    int rc = 0;
    if (!jsonl) {
        int e = buf_read_stream(&body, stdin);
        if (e) {
            fprintf(stderr, "switchyard route: %s\n",
                    e == SY_ETOOBIG ? "request larger than limits.max_body_bytes"
                                    : "cannot read the request from stdin");
            rc = 1;
            goto out;
        }
        int st = route_one(&x, body.data ? body.data : "", body.len, 42, &out);
        rc = st < 0 ? 1 : st == 200 ? 0 : 3;
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        uint64_t seq = 0;
        while ((n = getline(&line, &cap, stdin)) > 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = 0;
            if (!n) continue;
            if (route_one(&x, line, (size_t)n, 42 + seq++, &out) < 0) {
                rc = 1;
                break;
            }
        }
        free(line);
    }
out:
    buf_deinit(&out);
    buf_deinit(&body);
    cli_decider_close(&x);
    return rc;
}
