// Integration tests of hsm/tpm and the swtpm fleet against real swtpm
// instances: EK certificates read from NV must chain to the fleet's
// manufacturer CA, differ between machines, and certify the TPM's real EK.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "agentroot/hsm/tpm/ek_profile.h"
#include "agentroot/hsm/tpm/tpm_context.h"
#include "agentroot/simulators/testing/run_command.h"
#include "agentroot/simulators/testing/scoped_fleet.h"
#include "test_util.h"

namespace agentroot::tests {
namespace {

using common::StatusCode;
using hsm::tpm::EkKind;
using hsm::tpm::TpmContext;
using simulators::testing::RunCommand;
using simulators::testing::ScopedFleet;

std::unique_ptr<TpmContext> Connect(const std::string& tcti) {
  auto ctx = TpmContext::Create(tcti);
  EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
  if (!ctx.ok()) return nullptr;
  common::Status started = (*ctx)->Startup();
  EXPECT_TRUE(started.ok()) << started.ToString();
  return std::move(ctx).value();
}

struct MachineCerts {
  common::X509Ptr rsa;
  common::X509Ptr p384;
};

TEST(TpmFleetTest, EkCertificatesFromNvChainToManufacturerCaAndDiffer) {
  auto fleet = ScopedFleet::Create(2);
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  const simulators::FleetInfo& info = (*fleet)->info();
  ASSERT_EQ(info.machines.size(), 2u);
  EXPECT_NE(info.machines[0].port, info.machines[1].port);

  auto root = LoadPemCertificate(info.manufacturer_ca);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  auto intermediate = LoadPemCertificate(info.manufacturer_intermediate);
  ASSERT_TRUE(intermediate.ok()) << intermediate.status().ToString();

  std::vector<MachineCerts> certs;
  for (const simulators::MachineInfo& machine : info.machines) {
    SCOPED_TRACE(machine.name);
    auto tpm = Connect(machine.tcti);
    ASSERT_NE(tpm, nullptr);
    MachineCerts mc;
    for (EkKind kind : {EkKind::kRsa2048, EkKind::kEccP384}) {
      auto der = tpm->ReadEkCertificate(kind);
      ASSERT_TRUE(der.ok()) << der.status().ToString();
      auto cert = ParseDerCertificate(*der);
      ASSERT_TRUE(cert.ok()) << cert.status().ToString();

      common::Status verified = VerifyChain(cert->get(), root->get(), intermediate->get());
      EXPECT_TRUE(verified.ok()) << hsm::tpm::EkKindName(kind) << ": " << verified.ToString();

      // The file the fleet reported holds the same certificate.
      const std::string kind_name(hsm::tpm::EkKindName(kind));
      ASSERT_TRUE(machine.ek_certificates.contains(kind_name));
      auto from_file = LoadPemCertificate(machine.ek_certificates.at(kind_name));
      ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
      EXPECT_EQ(ToDer(from_file->get()), *der);

      EVP_PKEY* key = X509_get0_pubkey(cert->get());
      ASSERT_NE(key, nullptr);
      if (kind == EkKind::kRsa2048) {
        EXPECT_TRUE(EVP_PKEY_is_a(key, "RSA"));
        EXPECT_EQ(EVP_PKEY_get_bits(key), 2048);
        mc.rsa = std::move(cert).value();
      } else {
        EXPECT_TRUE(EVP_PKEY_is_a(key, "EC"));
        char group[64] = {};
        size_t len = 0;
        ASSERT_EQ(EVP_PKEY_get_group_name(key, group, sizeof(group), &len), 1);
        EXPECT_STREQ(group, "secp384r1");
        mc.p384 = std::move(cert).value();
      }
    }
    certs.push_back(std::move(mc));
  }

  // Two machines, two different TPMs: different certificates and keys.
  EXPECT_NE(ToDer(certs[0].rsa.get()), ToDer(certs[1].rsa.get()));
  EXPECT_NE(ToDer(certs[0].p384.get()), ToDer(certs[1].p384.get()));
  EXPECT_NE(EVP_PKEY_eq(X509_get0_pubkey(certs[0].rsa.get()),
                        X509_get0_pubkey(certs[1].rsa.get())),
            1);
  EXPECT_NE(EVP_PKEY_eq(X509_get0_pubkey(certs[0].p384.get()),
                        X509_get0_pubkey(certs[1].p384.get())),
            1);

  // The verification can fail: wrong anchor, missing intermediate, a
  // flipped signature bit.
  common::X509Ptr stranger = MakeUnrelatedCa("swtpm-localca-rootca");
  EXPECT_EQ(VerifyChain(certs[0].rsa.get(), stranger.get(), intermediate->get()).code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(VerifyChain(certs[0].rsa.get(), root->get(), nullptr).code(),
            StatusCode::kUnauthenticated);
  std::vector<uint8_t> flipped = ToDer(certs[1].p384.get());
  flipped[flipped.size() - 5] ^= 0x01;  // Inside the signature value.
  auto flipped_cert = ParseDerCertificate(flipped);
  if (flipped_cert.ok()) {  // A flip may also break the DER; either way it must not verify.
    EXPECT_EQ(VerifyChain(flipped_cert->get(), root->get(), intermediate->get()).code(),
              StatusCode::kUnauthenticated);
  }
}

// Reads the public part of a persistent EK through tpm2-tools, an
// independent implementation, as a PEM public key.
common::EvpPkeyPtr ReadPersistentEk(const std::string& tcti, const std::string& handle,
                                    const std::filesystem::path& out) {
  auto result = RunCommand({"tpm2_readpublic", "-T", tcti, "-c", handle, "-f", "pem", "-o",
                            out.string()});
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  if (!result.ok()) return nullptr;
  EXPECT_EQ(result->exit_code, 0) << result->stderr_text;
  common::BioPtr bio(BIO_new_file(out.c_str(), "r"));
  if (bio == nullptr) return nullptr;
  return common::EvpPkeyPtr(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
}

TEST(TpmFleetTest, EkCertificateCertifiesTheTpmsResidentEk) {
  auto fleet = ScopedFleet::Create(2);
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  const auto& machines = (*fleet)->info().machines;
  std::vector<common::EvpPkeyPtr> tpm_rsa_eks;
  for (const auto& machine : machines) {
    SCOPED_TRACE(machine.name);
    auto tpm = Connect(machine.tcti);
    ASSERT_NE(tpm, nullptr);
    struct Case {
      EkKind kind;
      const char* handle;
    };
    for (const Case& c : {Case{EkKind::kRsa2048, "0x81010001"}, Case{EkKind::kEccP384, "0x81010016"}}) {
      auto der = tpm->ReadEkCertificate(c.kind);
      ASSERT_TRUE(der.ok()) << der.status().ToString();
      auto cert = ParseDerCertificate(*der);
      ASSERT_TRUE(cert.ok()) << cert.status().ToString();
      common::EvpPkeyPtr ek = ReadPersistentEk(
          machine.tcti, c.handle, machine.state_dir / (std::string("ek-") + c.handle + ".pub"));
      ASSERT_NE(ek, nullptr);
      EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert->get()), ek.get()), 1)
          << "certificate at NV does not certify EK " << c.handle;
      if (c.kind == EkKind::kRsa2048) tpm_rsa_eks.push_back(std::move(ek));
    }
  }
  ASSERT_EQ(tpm_rsa_eks.size(), 2u);
  EXPECT_NE(EVP_PKEY_eq(tpm_rsa_eks[0].get(), tpm_rsa_eks[1].get()), 1);
}

TEST(TpmContextTest, ErrorsKeepTheTss2ReturnCode) {
  auto fleet = ScopedFleet::Create(1);
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  const std::string tcti = (*fleet)->info().machines[0].tcti;
  auto tpm = Connect(tcti);
  ASSERT_NE(tpm, nullptr);

  // Startup on a started TPM is fine, twice.
  EXPECT_TRUE(tpm->Startup().ok());

  // swtpm 0.7 makes no ECC P-256 EK: a missing index is NOT_FOUND and the
  // message names TPM2_RC_HANDLE.
  auto p256 = tpm->ReadEkCertificate(EkKind::kEccP256);
  ASSERT_FALSE(p256.ok());
  EXPECT_EQ(p256.status().code(), StatusCode::kNotFound);
  EXPECT_NE(p256.status().message().find("0x01c0000a"), std::string::npos)
      << p256.status().message();
  EXPECT_NE(p256.status().message().find("TSS2_RC 0x0000018b"), std::string::npos)
      << p256.status().message();

  // ReadNv returns the raw area; the certificate is a prefix of it.
  auto raw = tpm->ReadNv(hsm::tpm::EkCertificateNvIndex(EkKind::kRsa2048));
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  auto cert = tpm->ReadEkCertificate(EkKind::kRsa2048);
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  ASSERT_GE(raw->size(), cert->size());
  EXPECT_TRUE(std::equal(cert->begin(), cert->end(), raw->begin()));
  // Larger than one NV buffer chunk on most TPMs, so chunking was exercised
  // if TPM_PT_NV_BUFFER_MAX < size; the certificate must parse either way.
  EXPECT_TRUE(ParseDerCertificate(*cert).ok());

  // A moved-from context refuses politely.
  TpmContext moved = std::move(*tpm);
  EXPECT_TRUE(moved.Startup().ok());
  EXPECT_EQ(tpm->Startup().code(), StatusCode::kFailedPrecondition);

  // Nothing listens on port 1.
  auto unreachable = TpmContext::Create("swtpm:host=127.0.0.1,port=1");
  if (unreachable.ok()) {
    EXPECT_EQ((*unreachable)->Startup().code(), StatusCode::kUnavailable);
  } else {
    EXPECT_EQ(unreachable.status().code(), StatusCode::kUnavailable)
        << unreachable.status().ToString();
    EXPECT_NE(unreachable.status().message().find("TSS2_RC 0x"), std::string::npos);
  }
  EXPECT_EQ(TpmContext::Create("").status().code(), StatusCode::kInvalidArgument);
}

TEST(ScopedFleetTest, DestructorStopsInstancesAndRemovesDirectory) {
  pid_t pid = 0;
  std::filesystem::path dir;
  {
    auto fleet = ScopedFleet::Create(1);
    ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
    pid = (*fleet)->info().machines[0].pid;
    dir = (*fleet)->dir();
    ASSERT_TRUE(ProcessAlive(pid));
    EXPECT_NE(ProcessCmdline(pid).find(dir.string()), std::string::npos);
  }
  EXPECT_FALSE(ProcessAlive(pid));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(ScopedFleetTest, WatchdogCleansUpWhenTheTestProcessDies) {
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(report[0]);
    auto fleet = ScopedFleet::Create(1);
    if (!fleet.ok()) ::_exit(2);
    const std::string line = std::to_string((*fleet)->info().machines[0].pid) + " " +
                             (*fleet)->dir().string();
    if (::write(report[1], line.data(), line.size()) < 0) ::_exit(3);
    ::close(report[1]);
    ::kill(::getpid(), SIGKILL);  // Dies without running any destructor.
  }
  ::close(report[1]);
  std::string line;
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(report[0], buf, sizeof(buf))) > 0) line.append(buf, static_cast<size_t>(n));
  ::close(report[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_FALSE(line.empty()) << "child failed to start a fleet, status " << status;
  const pid_t swtpm_pid = static_cast<pid_t>(std::stol(line.substr(0, line.find(' '))));
  const std::filesystem::path dir = line.substr(line.find(' ') + 1);
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(swtpm_pid); }, std::chrono::seconds(15)))
      << "swtpm " << swtpm_pid << " survived its owner";
  EXPECT_TRUE(WaitUntil([&] { return !std::filesystem::exists(dir); }, std::chrono::seconds(15)))
      << dir << " was not removed";
  // Belt and braces: never leave a swtpm behind, even when this test fails.
  auto leftover = simulators::StopFleet(dir);
  EXPECT_TRUE(leftover.ok()) << leftover.status().ToString();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace agentroot::tests
