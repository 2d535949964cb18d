/* cmd_quantize.c — `switchyard quantize IN.gguf OUT.gguf --type TYPE [--pure] [-t N]`:
 * writes a GGUF model with its weight matrices quantized (see engine/quant.h for the
 * modes and the K-quant mixes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "cli/cli.h"
#include "engine/quant.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: switchyard quantize IN.gguf OUT.gguf --type TYPE [--pure] [-t THREADS]\n"
               "  TYPE: q8_0, q4_0, or the K-quant mixes q4_k_m, q5_k_m, q6_k, q4_k_s, q5_k_s,\n"
               "  q3_k_m, q3_k_s, q2_k (q4_k, q5_k and q3_k are q4_k_m, q5_k_m and q3_k_m, as\n"
               "  in llama-quantize).\n"
               "  Converts the weight matrices to the type; norms stay as they are, matrices\n"
               "  with rows not a multiple of 32 become F16. For q4_0 the output matrix (or\n"
               "  the tied token embedding) and attn_v stay q8_0 and each block's scale is\n"
               "  the one of least squared error. The K-quant mixes are llama-quantize's:\n"
               "  output q6_k, attn_v and ffn_down q6_k on some layers (_m), rows not a\n"
               "  multiple of 256 as q5_0/q5_1/q8_0 (q2_k/q3_k mixes refuse such rows: llama.cpp\n"
               "  writes iq4_nl there); the file matches llama-quantize's.\n"
               "  --pure  every matrix to the type with ggml's reference rounding: the file\n"
               "          matches llama.cpp's `llama-quantize --pure` byte for byte.\n");
}

int cmd_quantize(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *in = NULL, *out = NULL, *type = NULL;
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), pure = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pure")) {
            pure = 1;
        } else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            type = argv[++i];
        } else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 256, &threads)) {
                fprintf(stderr, "quantize: bad value '%s' for -t (1..256)\n", argv[i]);
                return 2;
            }
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
    static const struct {
        const char *name;
        kern_type_t type;
        int ftype;
    } types[] = {{"q8_0", KERN_Q8_0, 0},
                 {"q4_0", KERN_Q4_0, 0},
                 {"q4_k_m", KERN_Q4_K, QUANT_FTYPE_Q4_K_M},
                 {"q4_k", KERN_Q4_K, QUANT_FTYPE_Q4_K_M},
                 {"q4_k_s", KERN_Q4_K, QUANT_FTYPE_Q4_K_S},
                 {"q5_k_m", KERN_Q5_K, QUANT_FTYPE_Q5_K_M},
                 {"q5_k", KERN_Q5_K, QUANT_FTYPE_Q5_K_M},
                 {"q5_k_s", KERN_Q5_K, QUANT_FTYPE_Q5_K_S},
                 {"q6_k", KERN_Q6_K, QUANT_FTYPE_Q6_K},
                 {"q3_k_m", KERN_Q3_K, QUANT_FTYPE_Q3_K_M},
                 {"q3_k", KERN_Q3_K, QUANT_FTYPE_Q3_K_M},
                 {"q3_k_s", KERN_Q3_K, QUANT_FTYPE_Q3_K_S},
                 {"q2_k", KERN_Q2_K, QUANT_FTYPE_Q2_K}};
    int ti = -1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(type, types[i].name)) ti = (int)i;
    if (ti < 0) {
        fprintf(stderr,
                "quantize: --type must be q8_0, q4_0, q4_k_m, q4_k_s, q5_k_m, q5_k_s, q6_k, "
                "q3_k_m, q3_k_s or q2_k, not '%s'\n",
                type);
        return 2;
    }
    kern_type_t t = types[ti].type;
    char err[512] = "";
    quant_stats_t st;
    uint64_t t0 = clock_mono_ns();
    quant_opts_t o = {.type = t, .ftype = types[ti].ftype, .n_threads = threads, .pure = pure};
    int rc = quant_file_opts(in, out, &o, &st, err, sizeof err);
    if (rc) {
        fprintf(stderr, "quantize: %s\n", err[0] ? err : sy_strerror(rc));
        return 1;
    }
    printf("%s -> %s (%s%s): %zu tensors, %zu quantized, %zu %s, %zu as f16, %zu copied; "
           "%.2f MiB -> %.2f MiB in %.2f s\n",
           in, out, type, pure ? ", pure" : "", st.n_tensors, st.n_quantized, st.n_kept,
           types[ti].ftype ? "in the mix's other types" : "kept q8_0", st.n_f16, st.n_copied,
           st.bytes_in / 1048576.0, st.bytes_out / 1048576.0, (clock_mono_ns() - t0) / 1e9);
    return 0;
}
