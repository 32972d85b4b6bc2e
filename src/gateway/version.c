/* version.c: `rolegate --version` (issue 11 item 8): rolegate's version and
 * the versions of the libraries it is linked with: run-time versions where
 * the library reports one (libcurl, SQLite, OpenSSL, libxml2,
 * libmicrohttpd), else the version it was built against (lasso and libjwt
 * through pkg-config in the Makefile, xmlsec1, hiredis, jansson headers). */
#include <stdio.h>
#include <curl/curl.h>
#include <hiredis.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <xmlsec/version.h>
#include "rolegate/gateway.h"

#ifndef RG_BUILT_LASSO
#define RG_BUILT_LASSO "unknown"
#endif
#ifndef RG_BUILT_LIBJWT
#define RG_BUILT_LIBJWT "unknown"
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

void rg_gateway_print_version(FILE *out)
{
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    fprintf(out, "rolegate %s\n", RG_VERSION);
    fprintf(out, "lasso %s (built against)\n", RG_BUILT_LASSO);
    fprintf(out, "xmlsec1 %s (built against)\n", XMLSEC_VERSION);
    fprintf(out, "libxml2 %s\n", xmlParserVersion);
    fprintf(out, "libcurl %s\n", cv && cv->version ? cv->version : "unknown");
    fprintf(out, "libjwt %s (built against)\n", RG_BUILT_LIBJWT);
    fprintf(out, "hiredis %s.%s.%s (built against)\n", STR(HIREDIS_MAJOR), STR(HIREDIS_MINOR),
            STR(HIREDIS_PATCH));
    fprintf(out, "SQLite %s\n", sqlite3_libversion());
    fprintf(out, "OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION));
    fprintf(out, "libmicrohttpd %s\n", MHD_get_version());
    fprintf(out, "jansson %s (built against)\n", JANSSON_VERSION);
}
