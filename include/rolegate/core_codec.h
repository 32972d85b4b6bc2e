/* core_codec.h: a compact binary form of a compiled role table (R7-R11, R15),
 * so a table built from the store once can be shared through Redis and
 * rebuilt by other instances without the store. Pure C (libc only).
 * The blob starts with a format magic; a blob of another format, truncated
 * or corrupt is refused (never half-decoded), so a cache treats it as a miss. */
#ifndef ROLEGATE_CORE_CODEC_H
#define ROLEGATE_CORE_CODEC_H

#include <stddef.h>
#include "rolegate/core.h"
#include "rolegate/error.h"

/* Largest blob rg_core_table_decode accepts (a sanity bound, 64 MiB). */
#define RG_TABLE_BLOB_MAX (64u * 1024 * 1024)

/* Encodes t into a malloc'd blob (*out, caller frees) of *len bytes. The
 * blob holds the effective priority order, types, default role, version,
 * multiple_roles, organization id, per-role permissions and the
 * (connection, group) -> roles mappings. Returns 0 or RG_ENOMEM. */
int rg_core_table_encode(const rg_role_table *t, char **out, size_t *len);

/* Decodes a blob made by rg_core_table_encode into a new table (*out, free
 * with rg_role_table_free) equal to the one encoded (rg_core_table_equal).
 * The blob is borrowed. Returns 0; RG_EINVAL with err (500
 * "invalid_role_table_blob") for a blob that is not a well-formed table;
 * RG_ENOMEM. On failure *out is NULL. */
int rg_core_table_decode(const void *blob, size_t len, rg_role_table **out, rg_error *err);

/* 1 if a and b hold the same version, organization, multiple_roles flag,
 * priority order and types, default, permissions per role and mappings;
 * else 0. */
int rg_core_table_equal(const rg_role_table *a, const rg_role_table *b);

#endif
