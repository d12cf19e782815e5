// Interop with tpm2-tools 5.4 as the independent peer, on swtpm fleet
// machines: quotes both ways, credential activation both ways (RSA and ECC
// P-384 EKs), the AK/EK swap attack, an externally created key failing the
// certification check, and EK certificates matching our EK public areas.
//
// tpm2-tools leave the objects they load or create in the TPM (there is no
// resource manager here), so every tool run is followed by
// `tpm2_flushcontext -t`; our backend holds no object between operations.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "agentroot/attestation/ek_certificate.h"
#include "agentroot/attestation/make_credential.h"
#include "agentroot/attestation/tpm_evidence.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/bytes.h"
#include "agentroot/common/secret_bytes.h"
#include "agentroot/common/signer.h"
#include "agentroot/hsm/tpm/tpm_attestor.h"
#include "agentroot/hsm/tpm/tpm_device.h"
#include "agentroot/hsm/tpm/tpm_key_manager.h"
#include "agentroot/simulators/testing/run_command.h"
#include "agentroot/simulators/testing/scoped_fleet.h"

namespace agentroot::tests {
namespace {

namespace fs = std::filesystem;
using attestation::TpmPublic;
using common::Bytes;
using common::StatusCode;
using hsm::tpm::EkKind;
using hsm::tpm::kTpmAlgSha256;
using simulators::testing::RunCommand;
using simulators::testing::ScopedFleet;

Bytes ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void WriteBytes(const fs::path& path, common::ByteView data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

// One simulated machine: its swtpm, our device/attestor/key manager on it,
// and a scratch directory for tool files.
struct Machine {
  simulators::MachineInfo info;
  fs::path dir;
  std::shared_ptr<hsm::tpm::TpmDevice> device;
  std::unique_ptr<hsm::tpm::TpmAttestor> attestor;
  std::unique_ptr<hsm::tpm::TpmKeyManager> keys;

  // Runs a tpm2 tool against this machine, then flushes every transient
  // object the tool left behind. Returns stdout; fails the test on error.
  // `offline` tools (tpm2_checkquote) take no TCTI.
  std::string Tool(std::vector<std::string> argv, bool expect_success = true,
                   bool offline = false) const {
    if (!offline) argv.insert(argv.begin() + 1, {"-T", info.tcti});
    auto result = RunCommand(argv);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    if (!result.ok()) return "";
    auto flushed = RunCommand({"tpm2_flushcontext", "-T", info.tcti, "-t"});
    EXPECT_TRUE(flushed.ok() && flushed->exit_code == 0);
    if (expect_success) {
      EXPECT_EQ(result->exit_code, 0) << argv[0] << ": " << result->stderr_text;
    } else {
      EXPECT_NE(result->exit_code, 0) << argv[0] << " unexpectedly succeeded";
    }
    return result->stdout_text;
  }
  fs::path File(const std::string& name) const { return dir / name; }

  // EK (RSA) context + a tools-made ECC AK under it: ek.ctx, ek.pub, ak.ctx,
  // ak.pub (TPM2B_PUBLIC), ak.name.
  void ToolsAk() const {
    Tool({"tpm2_createek", "-c", File("ek.ctx"), "-G", "rsa", "-u", File("ek.pub")});
    Tool({"tpm2_createak", "-C", File("ek.ctx"), "-c", File("ak.ctx"), "-G", "ecc", "-g",
          "sha256", "-s", "ecdsa", "-u", File("ak.pub"), "-n", File("ak.name")});
  }
};

class InteropTest : public ::testing::Test {
 protected:
  void StartFleet(int n) {
    auto fleet = ScopedFleet::Create(n);
    ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
    fleet_ = std::move(fleet).value();
    for (const auto& info : fleet_->info().machines) {
      Machine m;
      m.info = info;
      m.dir = fleet_->dir() / ("interop-" + info.name);
      fs::create_directories(m.dir);
      hsm::tpm::TpmDeviceOptions options;
      options.tcti = info.tcti;
      auto device = hsm::tpm::TpmDevice::Open(std::move(options));
      ASSERT_TRUE(device.ok()) << device.status().ToString();
      m.device = *device;
      auto attestor = hsm::tpm::TpmAttestor::Create(m.device, m.dir / "state");
      ASSERT_TRUE(attestor.ok()) << attestor.status().ToString();
      m.attestor = std::move(attestor).value();
      auto keys = hsm::tpm::TpmKeyManager::Create(m.device, m.dir / "state");
      ASSERT_TRUE(keys.ok()) << keys.status().ToString();
      m.keys = std::move(keys).value();
      machines_.push_back(std::move(m));
    }
  }

  std::unique_ptr<ScopedFleet> fleet_;
  std::vector<Machine> machines_;
};

attestation::PcrValues ToAttestationPcrs(const hsm::tpm::PcrValues& values) {
  attestation::PcrValues out;
  for (const auto& [key, value] : values) out[key] = value;
  return out;
}

TEST_F(InteropTest, ToolsQuoteVerifiesInOurLibrary) {
  StartFleet(1);
  Machine& m = machines_[0];
  m.ToolsAk();
  ASSERT_TRUE(m.attestor->PcrExtend(10, common::Sha256(common::ToBytes("agent v1"))).ok());
  const Bytes nonce = common::ToBytes("fresh-nonce-0001");
  m.Tool({"tpm2_quote", "-c", m.File("ak.ctx"), "-l", "sha256:0,10", "-q",
          common::HexEncode(nonce), "-m", m.File("quote.msg"), "-s", m.File("quote.sig"), "-g",
          "sha256"});
  auto ak = TpmPublic::Parse(ReadBytes(m.File("ak.pub")));
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  EXPECT_TRUE(attestation::CheckAttestationKey(*ak).ok());
  auto pcrs = m.attestor->PcrRead({{kTpmAlgSha256, {0, 10}}});
  ASSERT_TRUE(pcrs.ok()) << pcrs.status().ToString();
  const attestation::PcrValues values = ToAttestationPcrs(*pcrs);
  const Bytes msg = ReadBytes(m.File("quote.msg"));
  const Bytes sig = ReadBytes(m.File("quote.sig"));

  auto verified = attestation::VerifyQuote(*ak, msg, sig, nonce, values);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_TRUE(attestation::SelectionCovers(verified->selection, kTpmAlgSha256, 10));

  // Wrong nonce.
  EXPECT_FALSE(attestation::VerifyQuote(*ak, msg, sig, common::ToBytes("fresh-nonce-0002"), values).ok());
  // Changed PCR value.
  attestation::PcrValues changed = values;
  changed[{kTpmAlgSha256, 10}][0] ^= 0x01;
  EXPECT_FALSE(attestation::VerifyQuote(*ak, msg, sig, nonce, changed).ok());
  // The real PCR moved on: the quote no longer matches the TPM's values.
  ASSERT_TRUE(m.attestor->PcrExtend(10, common::Sha256(common::ToBytes("agent v2"))).ok());
  auto later = m.attestor->PcrRead({{kTpmAlgSha256, {0, 10}}});
  ASSERT_TRUE(later.ok());
  EXPECT_FALSE(attestation::VerifyQuote(*ak, msg, sig, nonce, ToAttestationPcrs(*later)).ok());
  // Bit flips in message and signature.
  Bytes bad_msg = msg;
  bad_msg[bad_msg.size() / 2] ^= 0x01;
  EXPECT_FALSE(attestation::VerifyQuote(*ak, bad_msg, sig, nonce, values).ok());
  Bytes bad_sig = sig;
  bad_sig[bad_sig.size() - 3] ^= 0x01;
  EXPECT_FALSE(attestation::VerifyQuote(*ak, msg, bad_sig, nonce, values).ok());
}

TEST_F(InteropTest, OurQuoteVerifiesWithCheckquote) {
  StartFleet(1);
  Machine& m = machines_[0];
  auto ak = m.attestor->CreateAk("ak");
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  ASSERT_TRUE(m.attestor->PcrExtend(11, common::Sha256(common::ToBytes("x"))).ok());
  const Bytes nonce = common::ToBytes("checkquote-nonce");
  auto quote = m.attestor->Quote("ak", {{kTpmAlgSha256, {0, 11}}}, nonce);
  ASSERT_TRUE(quote.ok()) << quote.status().ToString();
  WriteBytes(m.File("our-ak.pub"), ak->tpm2b_public);
  WriteBytes(m.File("our.msg"), quote->tpms_attest);
  WriteBytes(m.File("our.sig"), quote->tpmt_signature);
  m.Tool({"tpm2_pcrread", "sha256:0,11", "-F", "serialized", "-o", m.File("our.pcrs")});
  m.Tool({"tpm2_checkquote", "-u", m.File("our-ak.pub"), "-m", m.File("our.msg"), "-s",
          m.File("our.sig"), "-f", m.File("our.pcrs"), "-g", "sha256", "-q",
          common::HexEncode(nonce)},
         /*expect_success=*/true, /*offline=*/true);
  // And the checks can fail: wrong nonce, flipped message.
  m.Tool({"tpm2_checkquote", "-u", m.File("our-ak.pub"), "-m", m.File("our.msg"), "-s",
          m.File("our.sig"), "-f", m.File("our.pcrs"), "-g", "sha256", "-q", "00"},
         /*expect_success=*/false, /*offline=*/true);
  Bytes flipped = quote->tpms_attest;
  flipped[flipped.size() - 1] ^= 0x01;
  WriteBytes(m.File("flipped.msg"), flipped);
  m.Tool({"tpm2_checkquote", "-u", m.File("our-ak.pub"), "-m", m.File("flipped.msg"), "-s",
          m.File("our.sig"), "-g", "sha256", "-q", common::HexEncode(nonce)},
         /*expect_success=*/false, /*offline=*/true);
  // Our own verifier agrees.
  auto parsed_ak = TpmPublic::Parse(ak->tpm2b_public);
  ASSERT_TRUE(parsed_ak.ok());
  auto pcrs = m.attestor->PcrRead({{kTpmAlgSha256, {0, 11}}});
  ASSERT_TRUE(pcrs.ok());
  EXPECT_TRUE(attestation::VerifyQuote(*parsed_ak, quote->tpms_attest, quote->tpmt_signature,
                                       nonce, ToAttestationPcrs(*pcrs))
                  .ok());
}

// tpm2_makecredential's output: 0xBADCC0DE, version 1, TPM2B_ID_OBJECT,
// TPM2B_ENCRYPTED_SECRET.
Bytes ToolsCredentialFile(const attestation::CredentialChallenge& c) {
  Bytes out = {0xba, 0xdc, 0xc0, 0xde, 0x00, 0x00, 0x00, 0x01};
  out.insert(out.end(), c.credential_blob.begin(), c.credential_blob.end());
  out.insert(out.end(), c.encrypted_secret.begin(), c.encrypted_secret.end());
  return out;
}

TEST_F(InteropTest, OurMakeCredentialIsActivatedByTools) {
  StartFleet(1);
  Machine& m = machines_[0];
  m.ToolsAk();
  const Bytes ak_name = ReadBytes(m.File("ak.name"));
  struct Case {
    EkKind kind;
    std::string ek_handle;  // the EK as tpm2_activatecredential's -C
    bool policy;            // L-1: PolicySecret(endorsement); P-384 (userWithAuth): password
  };
  for (const Case& c : {Case{EkKind::kRsa2048, m.File("ek.ctx").string(), true},
                        Case{EkKind::kEccP384, "0x81010016", false}}) {
    SCOPED_TRACE(std::string(hsm::tpm::EkKindName(c.kind)));
    auto ek_public = m.attestor->ReadEkPublic(c.kind);
    ASSERT_TRUE(ek_public.ok()) << ek_public.status().ToString();
    auto ek = TpmPublic::Parse(*ek_public);
    ASSERT_TRUE(ek.ok()) << ek.status().ToString();
    common::SecretBytes secret(common::ToBytes("credential-secret-for-" + std::string(hsm::tpm::EkKindName(c.kind))));
    auto challenge = attestation::MakeCredential(*ek, ak_name, secret);
    ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
    WriteBytes(m.File("cred.bin"), ToolsCredentialFile(*challenge));
    fs::remove(m.File("recovered"));
    if (c.policy) {
      m.Tool({"tpm2_startauthsession", "--policy-session", "-S", m.File("session.ctx")});
      m.Tool({"tpm2_policysecret", "-S", m.File("session.ctx"), "-c", "e"});
      m.Tool({"tpm2_activatecredential", "-c", m.File("ak.ctx"), "-C", c.ek_handle, "-i",
              m.File("cred.bin"), "-o", m.File("recovered"), "-P",
              "session:" + m.File("session.ctx").string()});
      RunCommand({"tpm2_flushcontext", "-T", m.info.tcti, m.File("session.ctx")}).status().IgnoreError();
    } else {
      m.Tool({"tpm2_activatecredential", "-c", m.File("ak.ctx"), "-C", c.ek_handle, "-i",
              m.File("cred.bin"), "-o", m.File("recovered")});
    }
    EXPECT_TRUE(secret.Equals(ReadBytes(m.File("recovered"))));
  }
}

TEST_F(InteropTest, ToolsMakeCredentialIsActivatedByUs) {
  StartFleet(1);
  Machine& m = machines_[0];
  auto ak = m.attestor->CreateAk("ak");
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  for (EkKind kind : {EkKind::kRsa2048, EkKind::kEccP384}) {
    SCOPED_TRACE(std::string(hsm::tpm::EkKindName(kind)));
    auto ek_public = m.attestor->ReadEkPublic(kind);
    ASSERT_TRUE(ek_public.ok()) << ek_public.status().ToString();
    WriteBytes(m.File("ek-ours.pub"), *ek_public);
    const Bytes secret = common::ToBytes("tools-made-secret");
    WriteBytes(m.File("secret.bin"), secret);
    auto made = RunCommand({"tpm2_makecredential", "-T", "none", "-u", m.File("ek-ours.pub"), "-s",
                            m.File("secret.bin"), "-n", common::HexEncode(ak->name), "-o",
                            m.File("tools-cred.bin")});
    ASSERT_TRUE(made.ok());
    ASSERT_EQ(made->exit_code, 0) << made->stderr_text;
    const Bytes file = ReadBytes(m.File("tools-cred.bin"));
    ASSERT_GT(file.size(), 10u);
    ASSERT_EQ(common::HexEncode(common::ByteView(file.data(), 8)), "badcc0de00000001");
    const size_t id_len = 2 + ((size_t{file[8]} << 8) | file[9]);
    ASSERT_LT(8 + id_len, file.size());
    const Bytes blob(file.begin() + 8, file.begin() + static_cast<long>(8 + id_len));
    const Bytes enc(file.begin() + static_cast<long>(8 + id_len), file.end());
    auto recovered = m.attestor->ActivateCredential("ak", kind, blob, enc);
    ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
    EXPECT_TRUE(recovered->Equals(secret));
    // A flipped bit in the blob: the TPM's integrity check refuses it.
    Bytes tampered = blob;
    tampered[tampered.size() - 1] ^= 0x01;
    auto refused = m.attestor->ActivateCredential("ak", kind, tampered, enc);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied) << refused.status().ToString();
    EXPECT_NE(refused.status().message().find("TSS2_RC 0x"), std::string::npos);
  }
}

TEST_F(InteropTest, AkOfMachineBWithEkOfMachineACannotActivate) {
  StartFleet(2);
  Machine& a = machines_[0];
  Machine& b = machines_[1];
  auto ak_b = b.attestor->CreateAk("ak");
  ASSERT_TRUE(ak_b.ok()) << ak_b.status().ToString();
  auto ek_a = TpmPublic::Parse(a.attestor->ReadEkPublic(EkKind::kRsa2048).value());
  auto ek_b = TpmPublic::Parse(b.attestor->ReadEkPublic(EkKind::kRsa2048).value());
  ASSERT_TRUE(ek_a.ok() && ek_b.ok());
  common::SecretBytes secret(common::ToBytes("only-for-the-right-tpm"));

  // The attacker presents A's EK (and certificate) with B's AK.
  auto swapped = attestation::MakeCredential(*ek_a, ak_b->name, secret);
  ASSERT_TRUE(swapped.ok()) << swapped.status().ToString();
  auto on_b = b.attestor->ActivateCredential("ak", EkKind::kRsa2048, swapped->credential_blob,
                                              swapped->encrypted_secret);
  EXPECT_FALSE(on_b.ok());
  // A has no AK with that name: its own AK does not open it either.
  auto ak_a = a.attestor->CreateAk("ak");
  ASSERT_TRUE(ak_a.ok());
  auto on_a = a.attestor->ActivateCredential("ak", EkKind::kRsa2048, swapped->credential_blob,
                                              swapped->encrypted_secret);
  EXPECT_FALSE(on_a.ok());
  // Control: the honest pairing works.
  auto honest = attestation::MakeCredential(*ek_b, ak_b->name, secret);
  ASSERT_TRUE(honest.ok());
  auto ok = b.attestor->ActivateCredential("ak", EkKind::kRsa2048, honest->credential_blob,
                                            honest->encrypted_secret);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ok->Equals(secret));
}

TEST_F(InteropTest, ExternalKeyFailsCertificationWhileOurAgentKeyPasses) {
  StartFleet(1);
  Machine& m = machines_[0];
  auto ak = m.attestor->CreateAk("ak");
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  auto ak_public = TpmPublic::Parse(ak->tpm2b_public);
  ASSERT_TRUE(ak_public.ok());
  const Bytes nonce = common::ToBytes("certify-nonce");

  // Our agent key: TPM-generated, non-duplicable.
  auto key = m.keys->Generate("agent", {});
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto cert = m.attestor->Certify("ak", **key, nonce);
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  auto key_public = TpmPublic::Parse((*key)->native_public());
  ASSERT_TRUE(key_public.ok());
  auto verified = attestation::VerifyCertification(*ak_public, cert->tpms_attest,
                                                   cert->tpmt_signature, nonce, *key_public);
  EXPECT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_FALSE(attestation::VerifyCertification(*ak_public, cert->tpms_attest, cert->tpmt_signature,
                                                common::ToBytes("other"), *key_public)
                   .ok());

  // A key made by openssl and loaded with tpm2_loadexternal; the TPM
  // certifies it when asked (signed by our AK, so only the attributes give
  // it away).
  auto gen = RunCommand({"openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                         m.File("ext.pem").string()});
  ASSERT_TRUE(gen.ok() && gen->exit_code == 0);
  m.Tool({"tpm2_loadexternal", "-C", "n", "-G", "ecc", "-r", m.File("ext.pem"), "-c",
          m.File("ext.ctx")});
  m.Tool({"tpm2_readpublic", "-c", m.File("ext.ctx"), "-o", m.File("ext.pub"), "-f", "tss"});
  m.ToolsAk();
  // tpm2_certify 5.4 has no qualifying-data option: extraData is empty.
  m.Tool({"tpm2_certify", "-c", m.File("ext.ctx"), "-C", m.File("ak.ctx"), "-g", "sha256", "-o",
          m.File("ext.attest"), "-s", m.File("ext.sig")});
  auto tools_ak = TpmPublic::Parse(ReadBytes(m.File("ak.pub")));
  auto ext = TpmPublic::Parse(ReadBytes(m.File("ext.pub")));
  ASSERT_TRUE(tools_ak.ok() && ext.ok());
  EXPECT_FALSE(ext->HasAttributes(attestation::tpma_object::kSensitiveDataOrigin));
  // tpm2_certify chooses the qualifying data itself: take it from the attest.
  const Bytes ext_attest = ReadBytes(m.File("ext.attest"));
  auto parsed_attest = attestation::ParseTpmsAttest(ext_attest);
  ASSERT_TRUE(parsed_attest.ok()) << parsed_attest.status().ToString();
  EXPECT_EQ(parsed_attest->certified_name, ext->name());
  auto refused = attestation::VerifyCertification(*tools_ak, ext_attest, ReadBytes(m.File("ext.sig")),
                                                  parsed_attest->extra_data, *ext);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied) << refused.status().ToString();
}

TEST_F(InteropTest, EkPublicMatchesEkCertificate) {
  StartFleet(2);
  std::ifstream root_in(fleet_->info().manufacturer_ca);
  const std::string root((std::istreambuf_iterator<char>(root_in)), std::istreambuf_iterator<char>());
  std::ifstream inter_in(fleet_->info().manufacturer_intermediate);
  const std::string intermediate((std::istreambuf_iterator<char>(inter_in)),
                                 std::istreambuf_iterator<char>());
  auto validator = attestation::EkCertificateValidator::Create(root);
  ASSERT_TRUE(validator.ok()) << validator.status().ToString();
  for (EkKind kind : {EkKind::kRsa2048, EkKind::kEccP384}) {
    SCOPED_TRACE(std::string(hsm::tpm::EkKindName(kind)));
    auto cert_a = machines_[0].attestor->ReadEkCertificate(kind);
    auto pub_a = TpmPublic::Parse(machines_[0].attestor->ReadEkPublic(kind).value());
    auto pub_b = TpmPublic::Parse(machines_[1].attestor->ReadEkPublic(kind).value());
    ASSERT_TRUE(cert_a.ok() && pub_a.ok() && pub_b.ok());
    auto result = (*validator)->Validate(*cert_a, intermediate, *pub_a);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    // Machine B's EK with machine A's certificate.
    auto wrong = (*validator)->Validate(*cert_a, intermediate, *pub_b);
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.status().code(), StatusCode::kUnauthenticated);
    // Without the intermediate the chain does not verify.
    EXPECT_FALSE((*validator)->Validate(*cert_a, "", *pub_a).ok());
  }
}

}  // namespace
}  // namespace agentroot::tests
