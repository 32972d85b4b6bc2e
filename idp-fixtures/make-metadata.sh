#!/bin/sh
# Writes the fixture IdP's SAML metadata to stdout.
# usage: make-metadata.sh [sso_url] [cert.pem] [entity_id]
# The committed idp-metadata.xml is: make-metadata.sh > idp-metadata.xml
set -eu
here=$(dirname "$0")
sso=${1:-http://127.0.0.1:8089/saml/sso}
crt=${2:-$here/idp.crt}
eid=${3:-https://idp.fixture.rolegate.test/metadata}
b64=$(sed -e '/-----/d' "$crt" | tr -d '\n')
cat <<XML
<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="$eid">
 <md:IDPSSODescriptor WantAuthnRequestsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>$b64</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
  <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
  <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="$sso"/>
  <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="$sso"/>
 </md:IDPSSODescriptor>
</md:EntityDescriptor>
XML
