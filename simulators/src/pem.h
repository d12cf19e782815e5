// DER <-> PEM for X.509 certificates. Private to agentroot::simulators.
#ifndef AGENTROOT_SIMULATORS_SRC_PEM_H_
#define AGENTROOT_SIMULATORS_SRC_PEM_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agentroot/common/status.h"

namespace agentroot::simulators::internal {

// PEM ("-----BEGIN CERTIFICATE-----") of a DER certificate; INVALID_ARGUMENT
// when `der` is not exactly one DER certificate.
common::Result<std::string> CertificateDerToPem(const std::vector<uint8_t>& der);

// Writes `contents` to `path` through a temporary file and rename, so readers
// never see a half-written file.
common::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents);

// Whole file contents; NOT_FOUND / INTERNAL on failure.
common::Result<std::string> ReadFile(const std::filesystem::path& path);

}  // namespace agentroot::simulators::internal

#endif  // AGENTROOT_SIMULATORS_SRC_PEM_H_
