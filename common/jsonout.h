/*  jsonout - compact JSON text of a json_t, with every real in its shortest form.
 *
 *  jansson prints reals with %.17g, so 35.88 becomes 35.880000000000003: the same
 *  double, but not what anyone wrote.  mesh_jsonout_dumps writes exactly what
 *  json_dumps (value, JSON_COMPACT | JSON_PRESERVE_ORDER) writes - the same bytes for
 *  objects, arrays, strings, integers, true, false and null - except that each real
 *  is printed with the fewest significant digits (1 to 17) that strtod reads back to
 *  the same double, keeping a ".0" or an exponent so it stays a real when read back.
 *  The decision ledger writes its records with it (daemon/ledger.c).
 */
#ifndef MESH_JSONOUT_H
#define MESH_JSONOUT_H

#include <jansson.h>
#include <stddef.h>

//  Deepest nesting serialised; deeper values (and reference loops) give NULL.
#define MESH_JSONOUT_MAX_DEPTH 2048

//  The compact text of VALUE (an object or an array, as json_dumps without
//  JSON_ENCODE_ANY), NUL-terminated; the caller frees it with free().  NULL if VALUE is
//  not an object or array, holds a real that is NaN or infinite, a string that is not
//  valid UTF-8, is nested deeper than MESH_JSONOUT_MAX_DEPTH, or memory ran out.
char *mesh_jsonout_dumps (const json_t *value);

//  The shortest text of the finite double D as a JSON real into BUF (SIZE >= 32):
//  "35.88", "0.1", "1.0", "1e300", "-0.0", "5e-324".  Returns its length, or -1 if D
//  is NaN or infinite or BUF is too small.
int mesh_jsonout_real (double d, char *buf, size_t size);

#endif
