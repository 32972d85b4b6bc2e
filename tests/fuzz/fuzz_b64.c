/* fuzz_b64.c: libFuzzer target for the base64 / base64url codecs of util.h.
 * Properties: decoding never writes past the documented bound
 * ((len*3)/4+3 bytes, an exact-size heap buffer so ASan sees overflows);
 * encode -> decode is the identity for both alphabets; base64url decoding is
 * canonical (an accepted input re-encodes to itself); standard base64 accepts
 * exactly what re-encodes to the input minus whitespace and padding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1. arbitrary bytes as base64url text */
    unsigned char *dec = malloc(size * 3 / 4 + 3);
    char *enc = malloc(size * 2 + 8);
    unsigned char *dec2 = malloc(size * 2 + 8);
    if (!dec || !enc || !dec2)
        abort();
    long n = rg_b64url_decode((const char *)data, size, dec);
    if (n >= 0) {
        if ((size_t)n > size * 3 / 4)
            abort();                      /* more bytes than the input can hold */
        size_t el = rg_b64url_encode(dec, (size_t)n, enc);
        if (el != rg_b64url_len((size_t)n) || el != size || memcmp(enc, data, size))
            abort();                      /* base64url decoding must be canonical */
    }

    /* 2. arbitrary bytes as standard base64 (whitespace and '=' tolerated) */
    n = rg_b64_decode((const char *)data, size, dec);
    if (n >= 0) {
        size_t el = rg_b64_encode(dec, (size_t)n, enc);
        /* compare without padding and whitespace on both sides */
        size_t a = 0, b = 0;
        for (;;) {
            while (a < size && strchr(" \n\r\t=", data[a]) && data[a])
                a++;
            while (b < el && enc[b] == '=')
                b++;
            if (a == size || b == el)
                break;
            if ((char)data[a] != enc[b])
                abort();                  /* decoded bytes do not match the text */
            a++;
            b++;
        }
        if (a != size || b != el)
            abort();
    }

    /* 3. arbitrary bytes as data: round trips through both alphabets */
    size_t el = rg_b64url_encode(data, size, enc);
    if (el != rg_b64url_len(size) || strlen(enc) != el)
        abort();
    n = rg_b64url_decode(enc, el, dec2);
    if (n != (long)size || memcmp(dec2, data, size))
        abort();
    el = rg_b64_encode(data, size, enc);
    if (el % 4 || strlen(enc) != el)
        abort();
    n = rg_b64_decode(enc, el, dec2);
    if (n != (long)size || memcmp(dec2, data, size))
        abort();

    free(dec);
    free(enc);
    free(dec2);
    return 0;
}
