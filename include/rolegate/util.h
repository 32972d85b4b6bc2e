/* util.h: small helpers every layer above util may use: logging (one
 * key=value line per event, never a secret), ULID ids with type prefixes,
 * base64url, randomness, constant-time compare, time, a growable buffer. */
#ifndef ROLEGATE_UTIL_H
#define ROLEGATE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include "rolegate/arena.h"

/* ---- logging ---------------------------------------------------------- */
typedef enum { RG_LOG_DEBUG, RG_LOG_INFO, RG_LOG_WARN, RG_LOG_ERROR } rg_log_level;

/* Sets the minimum level and the destination (path NULL = stderr). Returns 0
 * or -1 if the file cannot be opened (stderr is kept then). */
int  rg_log_open(const char *path, rg_log_level min);
/* Reopens the log file (SIGHUP). Safe to call from a normal thread. */
int  rg_log_reopen(void);
/* One line: "ts=<iso> level=<lvl> <fmt...>\n", written atomically. The caller
 * writes key=value pairs; values with spaces must be quoted by the caller
 * (rg_log_quote). Never pass secrets, tokens or whole assertions. */
void rg_log(rg_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same line for a hot path (the request lines): copied into a batch that
 * a flusher thread writes within a few ms, one write(2) per batch. Lines
 * batched before a reopen go to the old file; exit(3) writes what is left
 * (a SIGKILL loses at most the last few ms of batched lines). */
void rg_log_batched(rg_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 when a line of level lvl is written (the caller can skip making it). */
int  rg_log_enabled(rg_log_level lvl);
/* rg_log_batched of a message already made (len bytes, no newline): the
 * request line's hot path, which builds its pairs without printf. */
void rg_log_batched_msg(rg_log_level lvl, const char *msg, size_t len);
/* Writes what is batched now (before a fork or an _exit). */
void rg_log_flush(void);
/* Copies s into out as a log-safe value: control chars and quotes escaped,
 * quoted if it has spaces, cut at outsz-1. Returns out. */
char *rg_log_quote(char *out, size_t outsz, const char *s);

/* ---- ids -------------------------------------------------------------- */
#define RG_ULID_LEN 26
/* Writes a 26-char ULID (Crockford base32; 48-bit ms time + 80 random bits),
 * monotonic within the process, and a NUL. */
void rg_ulid_new(char out[RG_ULID_LEN + 1]);
/* Writes "<prefix>_<ULID>" into out (size >= strlen(prefix)+28). */
void rg_id_new(const char *prefix, char *out, size_t outsz);
/* Returns 1 if s is "<prefix>_" followed by a well-formed ULID. */
int  rg_id_valid(const char *prefix, const char *s);

/* ---- randomness and comparison ---------------------------------------- */
/* Fills buf with n bytes from the kernel CSPRNG. Aborts on failure (there
 * is no safe way to continue without randomness). */
void rg_random_bytes(void *buf, size_t n);
/* Writes n random bytes as base64url (no padding) into out; returns out. */
char *rg_random_token(char *out, size_t outsz, size_t n);
/* Constant-time equality of two byte strings (length leaks, content not). */
int  rg_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* ---- base64url (RFC 4648 sec. 5, no padding) ------------------------- */
/* Encoded length for n bytes, without NUL. */
size_t rg_b64url_len(size_t n);
/* Encodes n bytes; out must hold rg_b64url_len(n)+1. Returns chars written. */
size_t rg_b64url_encode(const void *in, size_t n, char *out);
/* Decodes; accepts no padding and no '='. Returns decoded length, or -1 on a
 * bad character/length. out must hold (len*3)/4+3 bytes. */
long   rg_b64url_decode(const char *in, size_t len, unsigned char *out);
/* 1 if the n characters of s are all of the base64url alphabet
 * (A-Z a-z 0-9 - _), else 0; n == 0 gives 1 (callers bound the length). */
int    rg_b64url_chars(const char *s, size_t n);
/* The value (0-15) of the hex digit ch (either case), -1 if it is none. */
int    rg_hex_digit(int ch);
/* %-decodes s[0..n) into out (outsz bytes, NUL-terminated); '+' stays '+'.
 * The decoded length, or -1 on a bad escape, an escaped NUL or no room. */
long   rg_pct_decode(const char *s, size_t n, char *out, size_t outsz);
/* The 64-bit FNV-1a hash of s: the slot of a string key in the in-process
 * maps (offset basis 1469598103934665603, as every copy before it had). */
uint64_t rg_fnv1a(const char *s);
/* Length (1-4) of the valid UTF-8 sequence at p (p < end), 0 if invalid: no
 * overlong form, no surrogate, nothing above U+10FFFF (RFC 3629). *cp, if
 * not NULL, gets the code point. */
size_t rg_utf8_char(const unsigned char *p, const unsigned char *end, unsigned *cp);
/* Standard base64 (with padding, ignoring whitespace on decode). */
size_t rg_b64_encode(const void *in, size_t n, char *out);
long   rg_b64_decode(const char *in, size_t len, unsigned char *out);

/* ---- time -------------------------------------------------------------- */
int64_t rg_now_ms(void);      /* wall clock, ms since epoch */
int64_t rg_now(void);         /* wall clock, seconds */
int64_t rg_mono_us(void);     /* monotonic, microseconds */
int64_t rg_thread_cpu_us(void); /* this thread's CPU time, microseconds */
/* Writes "YYYY-MM-DDThh:mm:ss.mmmZ" for t_ms into out (>= 25 bytes). */
char *rg_iso8601_ms(int64_t t_ms, char *out, size_t outsz);

/* rg_buf, the growable buffer, is in arena.h (libc only: core uses it). */

/* ---- files ------------------------------------------------------------- */
/* Reads a whole file (<= max bytes) into a malloc'd NUL-terminated buffer.
 * Returns NULL on error or if larger than max; *len set if non-NULL. */
char *rg_file_read(const char *path, size_t max, size_t *len);
/* Writes data to path atomically (tmp + rename) with the given mode. */
int   rg_file_write(const char *path, const void *data, size_t len, int mode);
/* mkdir -p with mode. */
int   rg_mkdir_p(const char *path, int mode);

#endif
