// ca-init and issue against the openssl CLI (an independent implementation):
// `openssl verify` accepts the chain, the fingerprint matches `openssl x509
// -outform DER | sha256sum`, key files are 0600 and nothing is overwritten.
#include "agentroot/provisioning/operator_ca.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <ctime>

#include "test_util.h"

namespace agentroot::provisioning {
namespace {

using testing::RunShell;
using testing::TempDir;

unsigned Mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

TEST(OperatorCa, IssuedCertificateVerifiesWithOpenssl) {
  TempDir dir;
  auto ca = InitOperatorCa(dir / "ca", "Test operator CA", 30);
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  EXPECT_EQ(Mode(dir / "ca/ca.key"), 0600u);
  EXPECT_EQ(Mode(dir / "ca"), 0700u);
  EXPECT_EQ(ca->certificate.subject, "CN=Test operator CA");

  auto op = IssueOperatorCertificate(dir / "ca", "alice", "Alice Doe", 10, dir / "out");
  ASSERT_TRUE(op.ok()) << op.status().ToString();
  EXPECT_EQ(op->certificate_path, dir / "out/alice.crt");
  EXPECT_EQ(Mode(dir / "out/alice.key"), 0600u);
  EXPECT_NE(op->certificate.subject.find("CN=alice"), std::string::npos);
  EXPECT_NE(op->certificate.subject.find("Alice Doe"), std::string::npos);
  EXPECT_EQ(op->certificate.issuer, "CN=Test operator CA");
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  EXPECT_GT(op->certificate.not_after, now + 9 * 86400);
  EXPECT_LE(op->certificate.not_after, now + 10 * 86400);

  auto verify = RunShell("openssl verify -purpose sslclient -CAfile '" + (dir / "ca/ca.crt") + "' '" +
                    (dir / "out/alice.crt") + "' 2>&1");
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_NE(verify.output.find(": OK"), std::string::npos) << verify.output;

  auto fp = RunShell("openssl x509 -in '" + (dir / "out/alice.crt") + "' -outform DER | sha256sum");
  ASSERT_EQ(fp.exit_code, 0);
  EXPECT_EQ(fp.output.substr(0, 64), op->certificate.sha256_hex);

  auto text = RunShell("openssl x509 -in '" + (dir / "out/alice.crt") + "' -noout -text");
  EXPECT_NE(text.output.find("TLS Web Client Authentication"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("CA:FALSE"), std::string::npos);
  EXPECT_NE(text.output.find("prime256v1"), std::string::npos);

  // The key is the certificate's (openssl's view of both public keys).
  auto pub_cert = RunShell("openssl x509 -in '" + (dir / "out/alice.crt") + "' -noout -pubkey");
  auto pub_key = RunShell("openssl pkey -in '" + (dir / "out/alice.key") + "' -pubout");
  EXPECT_EQ(pub_cert.output, pub_key.output);

  // A certificate from another CA does not verify against this one.
  auto other = InitOperatorCa(dir / "other", "Other CA", 30);
  ASSERT_TRUE(other.ok());
  auto bad = RunShell("openssl verify -CAfile '" + (dir / "other/ca.crt") + "' '" + (dir / "out/alice.crt") + "' 2>&1");
  EXPECT_NE(bad.exit_code, 0);

  // Serials are random: two credentials differ.
  auto bob = IssueOperatorCertificate(dir / "ca", "bob", "", 10, dir / "out");
  ASSERT_TRUE(bob.ok());
  EXPECT_NE(bob->certificate.serial_hex, op->certificate.serial_hex);
  EXPECT_GE(op->certificate.serial_hex.size(), 38u);
}

TEST(OperatorCa, NeverOverwrites) {
  TempDir dir;
  ASSERT_TRUE(InitOperatorCa(dir / "ca", "CA", 30).ok());
  const std::string before = testing::ReadFile(dir / "ca/ca.key");
  auto again = InitOperatorCa(dir / "ca", "CA", 30);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), common::StatusCode::kAlreadyExists);
  EXPECT_EQ(testing::ReadFile(dir / "ca/ca.key"), before);

  ASSERT_TRUE(IssueOperatorCertificate(dir / "ca", "alice", "", 10, dir / "out").ok());
  const std::string cert = testing::ReadFile(dir / "out/alice.crt");
  auto twice = IssueOperatorCertificate(dir / "ca", "alice", "", 10, dir / "out");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), common::StatusCode::kAlreadyExists);
  EXPECT_EQ(testing::ReadFile(dir / "out/alice.crt"), cert);
}

TEST(OperatorCa, CreatesMissingOutputDirectoriesPrivate) {
  TempDir dir;
  ASSERT_TRUE(InitOperatorCa(dir / "ca", "CA", 30).ok());
  auto issued = IssueOperatorCertificate(dir / "ca", "alice", "", 10, dir / "operators/team/alice");
  ASSERT_TRUE(issued.ok()) << issued.status().message();
  for (const char* sub : {"operators", "operators/team", "operators/team/alice"}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir / sub).c_str(), &st), 0) << sub;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << sub;
  }
  EXPECT_FALSE(testing::ReadFile(dir / "operators/team/alice/alice.crt").empty());
}

TEST(OperatorCa, ValidatesInput) {
  TempDir dir;
  ASSERT_TRUE(InitOperatorCa(dir / "ca", "CA", 30).ok());
  for (const char* bad : {"", "../x", "a/b", ".hidden", "sp ace"}) {
    auto r = IssueOperatorCertificate(dir / "ca", bad, "", 10, dir / "out");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), common::StatusCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_FALSE(IssueOperatorCertificate(dir / "ca", "a", "", 0, dir / "out").ok());
  EXPECT_FALSE(IssueOperatorCertificate(dir / "missing", "a", "", 10, dir / "out").ok());
  EXPECT_FALSE(InitOperatorCa(dir / "ca2", "CA", 0).ok());
  // The credential does not outlive the CA.
  auto capped = IssueOperatorCertificate(dir / "ca", "carol", "", 3650, dir / "out");
  ASSERT_TRUE(capped.ok());
  auto ca = InspectCertificate(testing::ReadFile(dir / "ca/ca.crt"));
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ(capped->certificate.not_after, ca->not_after);
}

TEST(OperatorCa, ExpiredCertificateIsRefusedBeforeConnecting) {
  TempDir dir;
  ASSERT_TRUE(InitOperatorCa(dir / "ca", "CA", 30).ok());
  auto op = IssueOperatorCertificate(dir / "ca", "alice", "", 1, dir / "out");
  ASSERT_TRUE(op.ok());
  const std::string pem = testing::ReadFile(op->certificate_path);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  EXPECT_TRUE(CheckOperatorCertificate("alice.crt", pem, now).ok());
  common::Status expired = CheckOperatorCertificate("alice.crt", pem, now + 2 * 86400);
  EXPECT_EQ(expired.code(), common::StatusCode::kUnauthenticated);
  EXPECT_NE(expired.message().find("operator certificate alice.crt expired at "), std::string::npos)
      << expired.message();
  common::Status early = CheckOperatorCertificate("alice.crt", pem, now - 3600);
  EXPECT_EQ(early.code(), common::StatusCode::kUnauthenticated);
  EXPECT_EQ(CheckOperatorCertificate("x.crt", "junk", now).code(), common::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agentroot::provisioning
