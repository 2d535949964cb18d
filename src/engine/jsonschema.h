/* jsonschema.h — compiles a JSON Schema subset into a decoding grammar (grammar.h).
 *
 * Supported: type (a name or a list) object / array / string / number / integer /
 * boolean / null; properties; required; additionalProperties (false, true or absent:
 * only declared properties are generated either way); items (one schema); minItems,
 * maxItems; enum and const (any JSON values); anyOf whose branches are plain types
 * with at most one object and one array branch; nested objects and arrays up to
 * GRAMMAR_MAX_SCHEMA_DEPTH. Annotations (title, description, default, examples,
 * $schema, $id, $comment) are accepted and do not constrain. With strict, every
 * declared property is required (OpenAI's strict mode).
 *
 * Every other keyword (pattern, format, minimum, minLength, $ref, oneOf, allOf, ...)
 * is refused with SY_EUNSUPPORTED and a message naming it and where it is: never
 * silently ignored.
 */
#ifndef SY_ENGINE_JSONSCHEMA_H
#define SY_ENGINE_JSONSCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/grammar.h"

/* Compiles the schema text (len bytes of JSON). Returns 0 with *out owned
 * (grammar_free), SY_EPARSE (not JSON), SY_EUNSUPPORTED (a keyword or form outside the
 * subset) or SY_EINVAL (a malformed schema), with a message in err. */
int jsonschema_compile(const char *text, size_t len, bool strict, grammar_t **out, char *err,
                       size_t errlen);

struct cJSON;
/* The same from a parsed schema (borrowed). */
int jsonschema_compile_json(const struct cJSON *schema, bool strict, grammar_t **out, char *err,
                            size_t errlen);

/* A tool call grammar from an OpenAI `tools` array (borrowed): the output is
 * {"name":"<function name>","arguments":<object valid against that function's
 * parameters>}, compact up to the arguments, for one of the functions, or only the one
 * named `only` when not NULL (tool_choice naming a function). Each function's
 * parameters compile as above with its own `strict`; absent parameters allow only {}.
 * Names must be 1-64 of [A-Za-z0-9_-] (OpenAI's rule). Returns 0 with *out owned,
 * SY_EINVAL (a malformed tools array, an unknown `only`) or SY_EUNSUPPORTED (a schema
 * outside the subset, more than 64 functions), with a message in err naming the tool. */
int jsonschema_compile_tools(const struct cJSON *tools, const char *only, grammar_t **out,
                             char *err, size_t errlen);

#endif
