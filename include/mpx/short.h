/* mpx/short.h — mpyx's short names for the builder, for those who want
 * graphs to read like mpyx's:  EZ(Src, P(a, b), B(c, S(d, e)))
 * Include after <mpx.h>; the names are not prefixed, so they may clash. */
#ifndef MPX_SHORT_H
#define MPX_SHORT_H

#include "../mpx.h"

#define EZ(...) MPX_EZ(__VA_ARGS__)
#define S(...) MPX_S(__VA_ARGS__)
#define P(...) MPX_P(__VA_ARGS__)
#define B(...) MPX_B(__VA_ARGS__)
#define As(n, def, args) mpx_as((n), (def), (args))
#define By(n, def, args) mpx_by((n), (def), (args))

#endif
