/* check.h — `serve --check`: every file a configuration names exists and loads.
 *
 * config_load validates the file's shape; this goes further and opens what the
 * config points at, as the server would at start: each local tier's model and
 * tokenizer (loaded by the engine), the PII name lists, the routing model and task
 * classifier, and the folder of a sqlite store. The first failure is reported with
 * the key path and line of the key that names the file.
 */
#ifndef SY_API_CHECK_H
#define SY_API_CHECK_H

#include <stddef.h>

#include "api/config.h"

/* 0 if every named file loads, else an error with "FILE: KEY, line N: PATH: why"
 * in err. cfg is borrowed. */
int api_config_check(const config_t *cfg, char *err, size_t errlen);

#endif
