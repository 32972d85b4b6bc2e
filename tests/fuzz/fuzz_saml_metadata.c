/* fuzz_saml_metadata.c: libFuzzer target for the fail-closed IdP metadata
 * lint (saml.h: rg_saml_metadata_lint, rg_saml_metadata_info_json) and the
 * strict XML parser under it (rg_saml_xml_parse: no DTD, no entities, no
 * network). Byte 0 bit 0 = allow_sha1; the rest is the metadata.
 * Properties: no crash, leak or hang; a refusal is 422 invalid_metadata; an
 * accepted document has an entityID, an SSO endpoint with the Redirect or POST
 * binding and a certificate; its standalone EntityDescriptor (entity_xml) is
 * accepted again with the same entityID (the lint is idempotent); the info
 * JSON is valid and carries that entityID. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <libxml/tree.h>
#include "rolegate/saml.h"
#include "rolegate/util.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NOW 1750000000

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rg_log_open("/dev/null", RG_LOG_ERROR);
    CHECK(rg_saml_global_init() == 0);
    return 0;
}

static void check_info(const rg_saml_metadata_info *in)
{
    CHECK(in->entity_id && in->entity_id[0]);
    CHECK(in->n_sso >= 1 && in->n_certs >= 1 && in->entity_xml);
    for (size_t i = 0; i < in->n_sso; i++)
        CHECK(in->sso[i].binding && in->sso[i].location &&
              (!strcmp(in->sso[i].binding, "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect") ||
               !strcmp(in->sso[i].binding, "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")));
    for (size_t i = 0; i < in->n_certs; i++) {
        CHECK(memchr(in->certs[i].not_after, 0, sizeof in->certs[i].not_after));
        CHECK(memchr(in->certs[i].sha256, 0, sizeof in->certs[i].sha256));
    }
    char *js = rg_saml_metadata_info_json(in);
    CHECK(js);
    json_t *o = json_loads(js, 0, NULL);
    CHECK(json_is_object(o));
    json_t *eid = json_object_get(o, "entity_id");
    CHECK(json_is_string(eid) && !strcmp(json_string_value(eid), in->entity_id));
    json_decref(o);
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256 * 1024)
        return 0;
    int allow_sha1 = data[0] & 1;
    const char *xml = (const char *)data + 1;
    size_t len = size - 1;

    int why = -1;
    xmlDoc *doc = rg_saml_xml_parse(xml, len, &why);
    if (doc)
        xmlFreeDoc(doc);
    else   /* 3: bytes another parser could read in another encoding (item 11) */
        CHECK(why == 1 || why == 2 ||
              (why == 3 && rg_saml_xml_charset_check(xml, len) != NULL));
    if (doc)   /* what parsed passed the one-reading rule */
        CHECK(rg_saml_xml_charset_check(xml, len) == NULL);

    rg_saml_metadata_info info;
    rg_error err;
    int rc = rg_saml_metadata_lint(xml, len, allow_sha1, NOW, &info, &err);
    if (getenv("RG_FUZZ_VERBOSE"))
        fprintf(stderr, "lint: rc=%d %s\n", rc, rc ? err.message : "-");
    if (rc != 0) {
        CHECK(err.status == 422 && !strcmp(err.code, "invalid_metadata"));
        return 0;
    }
    check_info(&info);
    /* idempotence: the unwrapped EntityDescriptor passes on its own */
    rg_saml_metadata_info again;
    rc = rg_saml_metadata_lint(info.entity_xml, strlen(info.entity_xml), allow_sha1, NOW,
                               &again, &err);
    if (rc != 0)
        fprintf(stderr, "entity_xml refused: %s %s\n", err.field, err.message);
    CHECK(rc == 0);
    CHECK(!strcmp(again.entity_id, info.entity_id) && again.n_certs == info.n_certs &&
          again.n_sso == info.n_sso);
    rg_saml_metadata_info_clear(&again);
    rg_saml_metadata_info_clear(&info);
    /* NULL out is allowed */
    CHECK(rg_saml_metadata_lint(xml, len, allow_sha1, NOW, NULL, &err) == 0);
    return 0;
}
