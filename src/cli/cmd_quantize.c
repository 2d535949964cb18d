/* cmd_quantize.c — `switchyard quantize IN.gguf OUT.gguf --type q8_0|q4_0 [-t N]`:
 * writes a GGUF model with its weight matrices quantized, as llama.cpp's
 * `llama-quantize --pure` does (see engine/quant.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "cli/cli.h"
#include "engine/quant.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: switchyard quantize IN.gguf OUT.gguf --type q8_0|q4_0 [-t THREADS]\n"
               "  Converts every weight matrix (token embedding and output included) to the\n"
               "  type; norms stay as they are, matrices with rows not a multiple of 32 become\n"
               "  F16. The output matches llama.cpp's `llama-quantize --pure` byte for byte.\n");
}

int cmd_quantize(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *in = NULL, *out = NULL, *type = NULL;
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            type = argv[++i];
        } else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "quantize: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!in || !out || !type) {
        usage(stderr);
        return 2;
    }
    kern_type_t t;
    if (!strcmp(type, "q8_0")) {
        t = KERN_Q8_0;
    } else if (!strcmp(type, "q4_0")) {
        t = KERN_Q4_0;
    } else {
        fprintf(stderr, "quantize: --type must be q8_0 or q4_0, not '%s'\n", type);
        return 2;
    }
    char err[512] = "";
    quant_stats_t st;
    uint64_t t0 = clock_mono_ns();
    int rc = quant_file(in, out, t, threads, &st, err, sizeof err);
    if (rc) {
        fprintf(stderr, "quantize: %s\n", err[0] ? err : sy_strerror(rc));
        return 1;
    }
    printf("%s -> %s (%s): %zu tensors, %zu quantized, %zu as f16, %zu copied; "
           "%.2f MiB -> %.2f MiB in %.2f s\n",
           in, out, type, st.n_tensors, st.n_quantized, st.n_f16, st.n_copied,
           st.bytes_in / 1048576.0, st.bytes_out / 1048576.0, (clock_mono_ns() - t0) / 1e9);
    return 0;
}
