/* llama_quantize.c — runs llama.cpp's own quantizer (llama_model_quantize with
 * --pure semantics) from the prebuilt libllama that the node-llama-cpp package ships,
 * so tests and benchmarks can compare switchyard's quantized files with llama.cpp's
 * byte for byte. Nothing is linked: the libraries are opened at run time.
 *
 *   llama_quantize LIBDIR IN.gguf OUT.gguf TYPE [--mix]
 *
 * TYPE is q8_0, q4_0, q2_k, q3_k_s, q3_k_m, q4_k_s, q4_k_m, q5_k_s, q5_k_m or q6_k
 * (llama.cpp's file types
 * of those names). --mix leaves `pure` off: llama.cpp's default tensor mix for the
 * file type (the output matrix, or the token embedding when it doubles as the output,
 * kept at a higher precision; for the K-quant types also attn_v and ffn_down of some
 * layers).
 *
 * LIBDIR holds libllama.v0.4.0.so and libggml*.so (node-llama-cpp 3.21.1:
 * bench/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64). Exit status 0 on
 * success, 2 on usage errors, 3 when the libraries cannot be loaded, 1 when
 * quantization fails.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The parameter struct of llama.h at the version node-llama-cpp 3.21.1 ships
 * (enums are int-sized); only ftype, nthread and pure are set here. */
typedef struct llama_quantize_params_abi {
    int32_t nthread;
    int ftype;
    int output_tensor_type;
    int token_embedding_type;
    bool allow_requantize;
    bool quantize_output_tensor;
    bool only_copy;
    bool pure;
    bool keep_split;
    bool dry_run;
    const void *imatrix;
    const void *kv_overrides;
    const void *tt_overrides;
    const int32_t *prune_layers;
    size_t max_buf_size;
} llama_quantize_params_abi_t;

/* llama.h's LLAMA_FTYPE_MOSTLY_* values */
static const struct {
    const char *name;
    int ftype;
} ftypes[] = {{"q8_0", 7},    {"q4_0", 2},    {"q2_k", 10},   {"q3_k_s", 11}, {"q3_k_m", 12},
              {"q4_k_s", 14}, {"q4_k_m", 15}, {"q5_k_s", 16}, {"q5_k_m", 17}, {"q6_k", 18}};

int main(int argc, char **argv)
{
    bool mix = argc == 6 && !strcmp(argv[5], "--mix");
    int ftype = -1;
    for (size_t i = 0; argc >= 5 && i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (!strcmp(argv[4], ftypes[i].name)) ftype = ftypes[i].ftype;
    if ((argc != 5 && !mix) || ftype < 0) {
        fprintf(stderr, "usage: llama_quantize LIBDIR IN.gguf OUT.gguf "
                        "q8_0|q4_0|q2_k|q3_k_s|q3_k_m|q4_k_s|q4_k_m|q5_k_s|q5_k_m|q6_k [--mix]\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/libggml.v0.4.0.so", argv[1]);
    void *ggml = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    snprintf(path, sizeof path, "%s/libllama.v0.4.0.so", argv[1]);
    void *llama = ggml ? dlopen(path, RTLD_NOW | RTLD_GLOBAL) : NULL;
    if (!llama) {
        fprintf(stderr, "llama_quantize: cannot load llama.cpp from %s: %s\n", argv[1], dlerror());
        return 3;
    }
    void (*load_all)(const char *) =
        (void (*)(const char *))dlsym(ggml, "ggml_backend_load_all_from_path");
    void (*backend_init)(void) = (void (*)(void))dlsym(llama, "llama_backend_init");
    llama_quantize_params_abi_t (*defaults)(void) =
        (llama_quantize_params_abi_t(*)(void))dlsym(llama, "llama_model_quantize_default_params");
    uint32_t (*quantize)(const char *, const char *, const llama_quantize_params_abi_t *) =
        (uint32_t(*)(const char *, const char *, const llama_quantize_params_abi_t *))dlsym(
            llama, "llama_model_quantize");
    if (!load_all || !backend_init || !defaults || !quantize) {
        fprintf(stderr, "llama_quantize: missing symbols in %s\n", argv[1]);
        return 3;
    }
    load_all(argv[1]);
    backend_init();
    llama_quantize_params_abi_t p = defaults();
    p.ftype = ftype;
    p.pure = !mix;
    p.nthread = 1;
    uint32_t rc = quantize(argv[2], argv[3], &p);
    if (rc != 0) {
        fprintf(stderr, "llama_quantize: llama_model_quantize failed (%u)\n", rc);
        return 1;
    }
    return 0;
}
