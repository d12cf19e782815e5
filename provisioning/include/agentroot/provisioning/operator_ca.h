// The operator CA, offline: `agentroot operator ca-init` and `operator issue`.
//
// The CA is an ECDSA P-256 key and a self-signed certificate in one
// directory (ca.key, 0600; ca.crt). Operator credentials are a P-256 key
// (<id>.key, 0600) and a client certificate (<id>.crt): CN = the operator id,
// extendedKeyUsage clientAuth, a random 159-bit serial, signed by the CA with
// SHA-256. The verifier names an operator by the SHA-256 of the
// certificate's DER (CertificateInfo::sha256_hex).
//
// Every file is created with O_EXCL: nothing is ever overwritten. Private
// keys are written PKCS#8 PEM, unencrypted: keep the CA directory offline.
// Keys never leave these functions except into their files.
//
// Thread safety: pure functions (apart from the files they write).
#ifndef AGENTROOT_PROVISIONING_OPERATOR_CA_H_
#define AGENTROOT_PROVISIONING_OPERATOR_CA_H_

#include <cstdint>
#include <string>

#include "agentroot/attestation/ek_certificate.h"
#include "agentroot/common/status.h"

namespace agentroot::provisioning {

// attestation's certificate summary plus the SHA-256 of the DER (lower-case
// hex): the fingerprint the verifier names an operator by.
struct CertificateInfo : attestation::CertificateSummary {
  std::string sha256_hex;
};

// Parses one PEM certificate (the first one in `pem`).
common::Result<CertificateInfo> InspectCertificate(std::string_view pem);

struct CaInitResult {
  std::string certificate_path;
  std::string key_path;
  CertificateInfo certificate;
};

// Creates `dir` (0700) if needed, then dir/ca.key and dir/ca.crt.
// ALREADY_EXISTS when either exists; INVALID_ARGUMENT for days outside
// 1..36500 or an empty name.
common::Result<CaInitResult> InitOperatorCa(const std::string& dir, const std::string& common_name, int days);

struct IssueResult {
  std::string certificate_path;
  std::string key_path;
  CertificateInfo certificate;
};

// Issues a credential for operator `id` ([A-Za-z0-9._@+-], 1-128 characters,
// not starting with '.'), optionally naming the person (`full_name`, as the
// subject's `name` attribute). The certificate ends after `days` (1..3650)
// or when the CA certificate ends, whichever is first. Writes
// out_dir/<id>.key and out_dir/<id>.crt (out_dir is created 0700 if
// needed). FAILED_PRECONDITION when the CA certificate has expired or the
// CA key does not match it.
common::Result<IssueResult> IssueOperatorCertificate(const std::string& ca_dir, const std::string& id,
                                                     const std::string& full_name, int days,
                                                     const std::string& out_dir);

// OK when the certificate in `pem` is valid at `now`; UNAUTHENTICATED
// "operator certificate <path> expired at <time>" / "is not valid before
// <time>" otherwise (checked before connecting), INVALID_ARGUMENT when it
// does not parse.
common::Status CheckOperatorCertificate(const std::string& path, std::string_view pem, int64_t now);

}  // namespace agentroot::provisioning

#endif  // AGENTROOT_PROVISIONING_OPERATOR_CA_H_
