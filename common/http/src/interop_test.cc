// The server's TLS policy as seen by an independent peer: the openssl CLI.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace agentroot::http {
namespace {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};

// Runs `command` through the shell with `input` on stdin.
CommandResult RunCommand(const std::string& command, const std::string& input = "") {
  char tmpl[] = "/tmp/agentroot-interop-in-XXXXXX";
  int fd = mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, input.data(), input.size()), static_cast<ssize_t>(input.size()));
  close(fd);
  std::string full = "timeout 20 " + command + " < " + tmpl + " 2>&1";
  CommandResult result;
  FILE* pipe = popen(full.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof(buf), pipe)) result.output.append(buf, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  unlink(tmpl);
  return result;
}

class InteropTest : public HttpTest {
 protected:
  void SetUp() override {
    HttpTest::SetUp();
    // scripts/install-deps.sh installs the peers: their absence is a failure.
    ASSERT_EQ(system("openssl version > /dev/null 2>&1"), 0) << "openssl CLI missing; run scripts/install-deps.sh";
    char tmpl[] = "/tmp/agentroot-interop-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);  // mode 0700
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  void StartDefault(ClientAuth auth = ClientAuth::kNone) {
    server_ = StartServer(TlsServerOptions(auth), [](HttpServer& s) {
      ASSERT_TRUE(s.Handle("GET", "/hello", [](const Request& r) {
                     std::string who = r.peer.tls && r.peer.tls->client_certificate_verified
                                           ? "client-cert"
                                           : "anonymous";
                     return TextResponse("hello " + who);
                   }).ok());
    });
    ASSERT_NE(server_, nullptr);
  }

  std::string SClient(const std::string& args) {
    return "openssl s_client -connect 127.0.0.1:" + std::to_string(server_->port()) +
           " -servername localhost " + args;
  }

  std::string WriteFile(const std::string& name, std::string_view content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    chmod(path.c_str(), 0600);
    return path;
  }

  std::string dir_;
  std::unique_ptr<HttpServer> server_;
};

const char kRequest[] = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

TEST_F(InteropTest, Tls13) {
  StartDefault();
  CommandResult r = RunCommand(SClient("-tls1_3 -ign_eof"), kRequest);
  EXPECT_NE(r.output.find("TLSv1.3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("HTTP/1.1 200"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hello anonymous"), std::string::npos) << r.output;
}

TEST_F(InteropTest, Tls12WithEcdheAead) {
  StartDefault();
  CommandResult r = RunCommand(SClient("-tls1_2 -ign_eof"), kRequest);
  EXPECT_NE(r.output.find("Protocol  : TLSv1.2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Cipher is ECDHE-ECDSA-AES"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GCM"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("HTTP/1.1 200"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Compression: NONE"), std::string::npos) << r.output;
}

TEST_F(InteropTest, Tls11Refused) {
  StartDefault();
  // SECLEVEL=0 so that the client really offers TLS 1.1: the refusal must
  // come from the server (its protocol_version alert).
  CommandResult r = RunCommand(SClient("-tls1_1 -cipher DEFAULT@SECLEVEL=0"));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("alert protocol version"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("HTTP/1.1"), std::string::npos);
}

TEST_F(InteropTest, WeakTls12SuitesRefused) {
  StartDefault();
  for (const char* suite : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256"}) {
    CommandResult r = RunCommand(SClient(std::string("-tls1_2 -cipher ") + suite + "@SECLEVEL=0"));
    EXPECT_NE(r.exit_code, 0) << suite << "\n" << r.output;
    EXPECT_NE(r.output.find("handshake failure"), std::string::npos) << suite << "\n" << r.output;
  }
}

TEST_F(InteropTest, RenegotiationRefused) {
  StartDefault();
  // "R" on its own line asks s_client to renegotiate.
  CommandResult r = RunCommand(SClient("-tls1_2"), "R\n");
  EXPECT_NE(r.output.find("RENEGOTIATING"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no renegotiation"), std::string::npos) << r.output;
}

TEST_F(InteropTest, MutualTls) {
  StartDefault(ClientAuth::kRequired);
  CommandResult anonymous = RunCommand(SClient("-tls1_3 -ign_eof"), kRequest);
  EXPECT_EQ(anonymous.output.find("HTTP/1.1 200"), std::string::npos) << anonymous.output;
  EXPECT_NE(anonymous.output.find("certificate required"), std::string::npos) << anonymous.output;

  auto client = pki_->IssueClient("operator-carol");
  ASSERT_TRUE(client.ok());
  std::string cert = WriteFile("client.pem", client->certificate_pem);
  common::ByteView key = client->private_key_pem.Reveal();
  std::string key_path =
      WriteFile("client.key", std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
  std::string ca = WriteFile("ca.pem", pki_->ca_certificate_pem());
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    CommandResult r = RunCommand(SClient(std::string(version) + " -ign_eof -verify_return_error -CAfile " +
                                  ca + " -cert " + cert + " -key " + key_path),
                          kRequest);
    EXPECT_NE(r.output.find("hello client-cert"), std::string::npos) << version << "\n" << r.output;
    EXPECT_NE(r.output.find("Verify return code: 0 (ok)"), std::string::npos) << r.output;
  }
}

TEST_F(InteropTest, CurlAgainstServer) {
  ASSERT_EQ(system("curl --version > /dev/null 2>&1"), 0) << "curl missing; run scripts/install-deps.sh";
  StartDefault();
  std::string ca = WriteFile("ca.pem", pki_->ca_certificate_pem());
  std::string base = "curl -sS --max-time 10 --cacert " + ca + " https://localhost:" +
                     std::to_string(server_->port());
  CommandResult ok = RunCommand(base + "/hello");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(ok.output, "hello anonymous");
  // curl sends Expect: 100-continue for larger bodies; the server answers
  // 100 then 405 here (no POST route).
  CommandResult post = RunCommand(base + "/hello -w '%{http_code}' -o /dev/null -H 'Expect: 100-continue' "
                                  "--data-binary @" + ca);
  EXPECT_EQ(post.output, "405") << post.output;
}

}  // namespace
}  // namespace agentroot::http
