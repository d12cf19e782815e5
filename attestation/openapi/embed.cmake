# Writes OUT (a .cc) defining OpenApiDocument() from the JSON file IN.
file(READ "${IN}" CONTENT)
file(WRITE "${OUT}" "// Generated from verifier.openapi.json; do not edit.\n#include \"agentroot/attestation/verifier_service.h\"\nnamespace agentroot::attestation {\nstd::string_view OpenApiDocument() {\n  static constexpr char kDocument[] = R\"oapi_json(${CONTENT})oapi_json\";\n  return kDocument;\n}\n}  // namespace agentroot::attestation\n")
