/* ggml_quants.c — runs ggml's own row quantization and dequantization from the
 * prebuilt libggml-base that the node-llama-cpp package ships, so tests can compare
 * switchyard's K-quant code with ggml's bit for bit. Nothing is linked: the library
 * is opened at run time.
 *
 *   ggml_quants LIBDIR quant   TYPE IN.f32 OUT.blocks   (quantize_row_<type>_ref)
 *   ggml_quants LIBDIR dequant TYPE IN.blocks OUT.f32   (dequantize_row_<type>)
 *
 * TYPE is q5_0, q5_1, q2_K, q3_K, q4_K, q5_K or q6_K; files are raw little-endian
 * arrays (f32 values, or whole blocks). Exit status 0 on success, 2 on usage errors,
 * 3 when the library or a symbol cannot be loaded, 1 on I/O errors.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t block_len, block_bytes;
} types[] = {{"q5_0", 32, 22},   {"q5_1", 32, 24},   {"q2_K", 256, 84}, {"q3_K", 256, 110},
             {"q4_K", 256, 144}, {"q5_K", 256, 176}, {"q6_K", 256, 210}};

/* Reads a whole file; returns owned bytes or NULL. */
static void *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(len > 0 ? (size_t)len : 1);
    if (p && len > 0 && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = len > 0 ? (size_t)len : 0;
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[2], "quant") && strcmp(argv[2], "dequant"))) {
        fprintf(stderr, "usage: ggml_quants LIBDIR quant|dequant TYPE IN OUT\n");
        return 2;
    }
    int ti = -1;
    for (int i = 0; i < (int)(sizeof types / sizeof types[0]); i++)
        if (!strcmp(types[i].name, argv[3])) ti = i;
    if (ti < 0) {
        fprintf(stderr, "ggml_quants: unknown type '%s'\n", argv[3]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/libggml-base.so", argv[1]);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "ggml_quants: cannot load %s: %s\n", path, dlerror());
        return 3;
    }
    int quant = !strcmp(argv[2], "quant");
    char sym[64];
    snprintf(sym, sizeof sym, quant ? "quantize_row_%s_ref" : "dequantize_row_%s", argv[3]);
    void (*fn)(const void *, void *, int64_t) =
        (void (*)(const void *, void *, int64_t))dlsym(lib, sym);
    if (!fn) {
        fprintf(stderr, "ggml_quants: no %s in %s\n", sym, path);
        return 3;
    }
    size_t n;
    void *in = slurp(argv[4], &n);
    if (!in) {
        fprintf(stderr, "ggml_quants: cannot read %s\n", argv[4]);
        return 1;
    }
    size_t nb = quant ? n / 4 / types[ti].block_len : n / types[ti].block_bytes;
    size_t k = nb * types[ti].block_len, out_n = quant ? nb * types[ti].block_bytes : k * 4;
    void *out = calloc(out_n ? out_n : 1, 1);
    fn(in, out, (int64_t)k);
    FILE *f = fopen(argv[5], "wb");
    int ok = f && fwrite(out, 1, out_n, f) == out_n;
    if (f) ok &= fclose(f) == 0;
    free(in);
    free(out);
    if (!ok) {
        fprintf(stderr, "ggml_quants: cannot write %s\n", argv[5]);
        return 1;
    }
    return 0;
}
