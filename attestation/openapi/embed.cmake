# Writes OUT (a .cc) defining OpenApiDocument() from the JSON file IN.
# The document is embedded in raw-string chunks of at most 30000 bytes and
# joined once at first use: one literal may not exceed 65536 bytes
# (-Woverlength-strings under clang).
file(READ "${IN}" CONTENT)
string(LENGTH "${CONTENT}" LENGTH)
set(PARTS "")
set(OFFSET 0)
while(OFFSET LESS LENGTH)
  string(SUBSTRING "${CONTENT}" ${OFFSET} 30000 PART)
  string(APPEND PARTS "      R\"oapi_json(${PART})oapi_json\",\n")
  math(EXPR OFFSET "${OFFSET} + 30000")
endwhile()
file(WRITE "${OUT}" "// Generated from verifier.openapi.json; do not edit.\n#include <string>\n\n#include \"agentroot/attestation/verifier_service.h\"\n\nnamespace agentroot::attestation {\n\nstd::string_view OpenApiDocument() {\n  static constexpr std::string_view kParts[] = {\n${PARTS}  };\n  static const std::string kDocument = [] {\n    std::string document;\n    for (std::string_view part : kParts) document += part;\n    return document;\n  }();\n  return kDocument;\n}\n\n}  // namespace agentroot::attestation\n")
