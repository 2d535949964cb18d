/* store_pg.c — the PostgreSQL backend (many gateway instances on one store). */
#include <stdio.h>

#include "store/store_impl.h"

store_t *store_pg_open(const char *url, char *err, size_t errlen)
{
    (void)url;
    snprintf(err, errlen, "this switchyard was built without PostgreSQL support (libpq)");
    return NULL;
}
