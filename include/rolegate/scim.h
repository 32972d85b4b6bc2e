/* scim.h: the pure SCIM 2.0 grammar rolegate accepts (RFC 7644 §3.4.2.2
 * filters, §3.5.2 PATCH paths; DESIGN.md "Directory sync"), in core: libc
 * only, no allocation, so it can be fuzzed on its own.
 *  - filter := term *( SP "and" SP term ); term := attrPath SP "eq" SP value;
 *    value := a JSON string, true, false or null. Operators and "and" are
 *    case-insensitive. Anything else (or, not, parentheses, co, sw, pr, gt,
 *    ...) is refused with a reason.
 *  - path := attrPath [ "[" filter "]" [ "." subAttr ] ], attrPath :=
 *    [ URN ":" ] attr [ "." subAttr ]; a URN starts with "urn:" and ends at
 *    the last ':' (urn:...:enterprise:2.0:User:department). */
#ifndef ROLEGATE_SCIM_H
#define ROLEGATE_SCIM_H

#include <stddef.h>

#define RG_SCIM_NAME_MAX   64     /* an attribute or sub-attribute name */
#define RG_SCIM_URN_MAX    160
#define RG_SCIM_VALUE_MAX  1024   /* a compared value, decoded */
#define RG_SCIM_TERMS_MAX  8
#define RG_SCIM_WHY_MAX    160

typedef enum { RG_SCIM_V_STRING, RG_SCIM_V_TRUE, RG_SCIM_V_FALSE, RG_SCIM_V_NULL } rg_scim_vtype;

/* attr eq value. attr keeps its URN prefix and sub-attribute
 * ("emails.value", "urn:...:User:department"). */
typedef struct rg_scim_term {
    char attr[RG_SCIM_URN_MAX + 2 * RG_SCIM_NAME_MAX];
    char value[RG_SCIM_VALUE_MAX];   /* decoded string ("" for non-strings) */
    rg_scim_vtype type;
} rg_scim_term;

/* Parses a filter into at most RG_SCIM_TERMS_MAX terms (and-ed). Returns
 * the number of terms (>= 1), or -1 with a reason in why (never NULL). */
int rg_scim_filter_parse(const char *s, rg_scim_term *terms, size_t max, char *why,
                         size_t whysz);

typedef struct rg_scim_path {
    char urn[RG_SCIM_URN_MAX];       /* "" when none */
    char attr[RG_SCIM_NAME_MAX];     /* never empty */
    char sub[RG_SCIM_NAME_MAX];      /* "name.givenName" / "emails[...].value": the sub */
    size_t n_filter;                 /* terms of a value filter "[...]" (0: none) */
    rg_scim_term filter[RG_SCIM_TERMS_MAX];
} rg_scim_path;

/* Parses a PATCH path. Returns 0, or -1 with a reason in why. */
int rg_scim_path_parse(const char *s, rg_scim_path *out, char *why, size_t whysz);

#endif
