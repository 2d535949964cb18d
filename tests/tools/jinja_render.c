/* jinja_render — renders a chat template file with a JSON context file and prints the
 * result, for comparison with a reference Jinja implementation.
 *
 *   jinja_render TEMPLATE CONTEXT.json [--spans]
 *
 * Prints the rendered text (exit 0), or "error: <message>" on stderr (exit 1 for a
 * render error, 2 for a usage or file error). With --spans, prints the byte ranges
 * that came from the context instead, one "off len" per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine/jinja.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = mem_alloc(cap);
    size_t k;
    while ((k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap) b = mem_realloc(b, cap *= 2);
    }
    fclose(f);
    b[n] = 0;
    *len = n;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: jinja_render TEMPLATE CONTEXT.json [--spans]\n");
        return 2;
    }
    size_t tl, cl;
    char *src = slurp(argv[1], &tl), *cj = slurp(argv[2], &cl);
    if (!src || !cj) {
        fprintf(stderr, "error: cannot read %s\n", !src ? argv[1] : argv[2]);
        mem_free(src);
        mem_free(cj);
        return 2;
    }
    cJSON *ctx = cJSON_Parse(cj);
    if (!ctx) {
        fprintf(stderr, "error: %s is not JSON\n", argv[2]);
        mem_free(src);
        mem_free(cj);
        return 2;
    }
    char err[512];
    jinja_tmpl_t *t;
    int rc = jinja_parse(src, tl, &t, err, sizeof err);
    if (!rc) {
        jinja_out_t o;
        jinja_out_init(&o, 16u << 20);
        /* The vocabulary's pieces are template-side, as the engine passes them. */
        cJSON *trusted = cJSON_CreateObject();
        static const char *const keys[] = {"bos_token", "eos_token"};
        for (int k = 0; k < 2; k++) {
            cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(ctx, keys[k]);
            if (v) cJSON_AddItemToObject(trusted, keys[k], v);
        }
        rc = jinja_render(t, ctx, trusted, NULL, &o, err, sizeof err);
        cJSON_Delete(trusted);
        if (!rc && argc > 3 && !strcmp(argv[3], "--spans"))
            for (size_t i = 0; i < o.n_spans; i++)
                printf("%zu %zu\n", o.spans[i].off, o.spans[i].len);
        else if (!rc)
            fwrite(o.text.data ? o.text.data : "", 1, o.text.len, stdout);
        jinja_out_deinit(&o);
        jinja_free(t);
    }
    if (rc) fprintf(stderr, "error: %s\n", err);
    cJSON_Delete(ctx);
    mem_free(src);
    mem_free(cj);
    return rc ? 1 : 0;
}
