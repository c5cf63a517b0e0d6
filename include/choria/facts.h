/* Node facts: the JSON object rpcutil#inventory reports and fact filters match against.
 *
 * go-choria (filter/facts/facts.go) reads a list of files separated by ':' (the OS path-list
 * separator); a file whose name ends in "yaml" is YAML, every other file JSON; each must
 * hold an object, and the objects are merged shallowly, later files winning (Ruby's
 * Hash#merge). A file that is missing, unreadable, too large or not an object is logged and
 * skipped; with no usable file the facts are {}. Like Go's re-encoding of the merged map,
 * keys come out sorted at every level.
 *
 * YAML scalars follow go-yaml (goccy): plain null/Null/NULL/~ and empty values are null,
 * true/True/TRUE/false/False/FALSE booleans, decimal, 0x, 0o, 0b and leading-zero (octal)
 * integers and numbers with a '.' numbers (with '_' separators); everything else, and every
 * quoted or block scalar, is a string. Aliases are followed (bounded by
 * CH_FACTS_MAX_YAML_NODES); .inf and .nan, which JSON cannot hold, make the file unusable. */
#ifndef CHORIA_FACTS_H
#define CHORIA_FACTS_H

#include <jansson.h>

#include "choria/common.h"

#define CH_FACTS_MAX_FILE_SIZE (1024 * 1024) /* one facts file */
#define CH_FACTS_MAX_FILES 32                /* entries in the path list */
#define CH_FACTS_MAX_PATH 4096               /* bytes of one path */
#define CH_FACTS_MAX_YAML_NODES 200000       /* values produced from one YAML file */

/* Loads and merges the facts files named in paths (':'-separated; NULL or "" = none) into a
 * new object in *out (never NULL on CH_OK). Problems with single files are logged (warn for
 * a missing file, error otherwise) and the file is skipped; only CH_ERR_NOMEM fails. When
 * loaded is not NULL it receives the number of files that contributed. */
ch_status ch_facts_load(const char *paths, json_t **out, size_t *loaded, ch_error *err);

/* Parses one facts document, text[0..len): YAML when yaml is true, else JSON. It must be an
 * object (or JSON null / an empty YAML document, which give {}). *out is a new object with
 * keys sorted at every level. */
ch_status ch_facts_parse(const char *text, size_t len, bool yaml, json_t **out, ch_error *err);

#endif
