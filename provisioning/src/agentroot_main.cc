// agentroot: the operator CLI. See docs/cli.md.
//
// This file only parses the command line (CLI11) and glues the commands of
// commands.h to the output formatter; every command is a function taking the
// AdminApi and its arguments. Errors are one line on stderr,
// "agentroot: <command>: <detail>", with the exit codes of cli_support.h.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agentroot/common/clock.h"
#include "agentroot/provisioning/admin_client.h"
#include "agentroot/provisioning/cli_config.h"
#include "agentroot/provisioning/cli_support.h"
#include "agentroot/provisioning/commands.h"
#include "agentroot/provisioning/operator_ca.h"
#include "agentroot/provisioning/output.h"

namespace {

namespace ap = agentroot::provisioning;
using agentroot::common::Json;
using agentroot::common::Result;
using agentroot::common::Status;

int64_t Now() { return agentroot::common::Clock::System().NowUnixSeconds(); }

// What the command line selected.
struct Context {
  ap::CliSettings settings;
  std::unique_ptr<ap::HttpAdminApi> api;
  std::string stdout_extra;  // printed before the rendering (audit export's lines)
  std::vector<std::string> notes;  // printed on stderr after the output

  Result<ap::AdminApi*> Api() {
    if (!api) {
      AR_ASSIGN_OR_RETURN(api, ap::HttpAdminApi::Create(settings, Now()));
    }
    return api.get();
  }
};

using Renderer = std::function<std::vector<ap::Table>(const Json&)>;

struct Action {
  Action() = default;
  Action(std::string w, std::function<Result<Json>(Context&)> r, Renderer rd = ap::RenderObject)
      : what(std::move(w)), run(std::move(r)), render(std::move(rd)) {}

  std::string what;  // "hosts approve"
  std::function<Result<Json>(Context&)> run;
  Renderer render;
  std::function<int(const Json&, Context&)> after;  // exit code from the result (inventory)
};

// Runs `fn(api)` with the connected AdminApi.
template <typename Fn>
std::function<Result<Json>(Context&)> Online(Fn fn) {
  return [fn](Context& ctx) -> Result<Json> {
    AR_ASSIGN_OR_RETURN(ap::AdminApi * api, ctx.Api());
    return fn(*api);
  };
}

std::optional<std::string> Given(const CLI::Option* option, const std::string& value) {
  if (option->count() == 0) return std::nullopt;
  return value;
}

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

CLI::App* Sub(CLI::App* parent, const std::string& name, const std::string& description, const std::string& example) {
  CLI::App* sub = parent->add_subcommand(name, description);
  sub->footer("Example:\n  " + example);
  return sub;
}

constexpr const char* kIntro =
    "agentroot: govern the agents of an agentroot deployment through the verifier's admin API\n"
    "(mutual TLS with your operator certificate). See docs/cli.md.";

constexpr const char* kConfigHelp =
    "Settings come from --config FILE, else $AGENTROOT_CONFIG, else ~/.config/agentroot/agentroot.toml:\n"
    "  verifier = \"https://verifier.example:8443\"\n"
    "  ca = \"verifier-ca.pem\"      certificate = \"alice.crt\"      private_key = \"alice.key\"\n"
    "  output = \"table\"\n"
    "Relative paths are relative to the file's directory. Flags win over the file.\n"
    "DURATION: 90s, 30m, 2h, 7d. TIME: YYYY-MM-DD, RFC 3339, or Unix seconds.\n\n"
    "Getting started:\n"
    "  agentroot operator ca-init --dir ./operator-ca\n"
    "  agentroot operator issue --ca-dir ./operator-ca --id alice --name \"Alice Doe\" --out ~/.agentroot\n"
    "  agentroot --config ~/.config/agentroot/agentroot.toml operator whoami\n\n";

}  // namespace

// "unknown command 'X' for 'agentroot G' (one of: ...)" when argv names a
// command that does not exist (CLI11 would only say a subcommand is
// required); empty otherwise.
std::string UnknownCommand(CLI::App& app, int argc, char** argv) {
  CLI::App* current = &app;
  std::string path = "agentroot";
  for (int i = 1; i < argc; ++i) {
    std::string token = argv[i];
    if (token.rfind("-", 0) == 0) {
      // An option: skip its value when it takes one and was not given as --opt=value.
      if (token.find('=') != std::string::npos) continue;
      const CLI::Option* option = current->get_option_no_throw(token);
      if (option == nullptr && current != &app) option = app.get_option_no_throw(token);
      if (option != nullptr && option->get_expected_min() > 0) ++i;
      continue;
    }
    if (current->get_subcommands({}).empty()) return "";  // a positional argument of a command
    CLI::App* next = nullptr;
    for (CLI::App* sub : current->get_subcommands({})) {
      if (sub->check_name(token)) next = sub;
    }
    if (next == nullptr) {
      std::string names;
      for (const CLI::App* sub : current->get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
      return "unknown command '" + token + "' for '" + path + "' (one of: " + names + ")";
    }
    current = next;
    path += " " + token;
  }
  return "";
}

int main(int argc, char** argv) {
  // EK public files are parsed with tss2-mu: keep its logging quiet.
  ::setenv("TSS2_LOG", "all+NONE", 1);

  CLI::App app{kIntro, "agentroot"};
  app.footer(std::string(kConfigHelp) + std::string(ap::ExitCodeHelp()));
  app.require_subcommand(1);
  app.fallthrough();  // global options are accepted after the subcommand too
  app.set_help_all_flag("--help-all", "Print the help of every command");

  std::string config, verifier, ca, cert, key, output;
  CLI::Option* o_config = app.add_option("--config", config, "Config file (TOML)");
  CLI::Option* o_verifier = app.add_option("--verifier", verifier, "Verifier URL, https://host[:port]");
  CLI::Option* o_ca = app.add_option("--ca", ca, "The verifier's TLS CA certificate (PEM)");
  CLI::Option* o_cert = app.add_option("--cert", cert, "Your operator certificate (PEM)");
  CLI::Option* o_key = app.add_option("--key", key, "Your operator private key (PEM)");
  CLI::Option* o_output = app.add_option("--output,-o", output, "Output format: table (default), json or csv")
                              ->check(CLI::IsMember({"table", "json", "csv"}));

  Action action;
  auto select = [&action](Action a) { action = std::move(a); };

  // ---- operator -----------------------------------------------------------
  CLI::App* op = app.add_subcommand("operator", "Operator identities: the operator CA, credentials, roles");
  op->require_subcommand(1);
  op->footer("Examples:\n  agentroot operator ca-init --dir /secure/operator-ca\n  agentroot operator issue --ca-dir /secure/operator-ca --id bob --out ./bob\n  agentroot operator add bob --name \"Bob Roe\" --role owner --cert bob/bob.crt");
  {
    auto args = std::make_shared<ap::OperatorCaInitArgs>();
    CLI::App* s = Sub(op, "ca-init", "Create the operator CA (offline): a P-256 key (0600) and a self-signed certificate",
                      "agentroot operator ca-init --dir /secure/operator-ca --name \"Example Corp operator CA\"");
    s->add_option("--dir", args->dir, "Directory for ca.key and ca.crt (created 0700; never overwritten)")->required();
    s->add_option("--name", args->name, "The CA's common name")->capture_default_str();
    s->add_option("--days", args->days, "Validity in days")->capture_default_str();
    s->callback([=, &select] { select({"operator ca-init", [args](Context&) { return ap::OperatorCaInit(*args); }}); });
  }
  {
    auto args = std::make_shared<ap::OperatorIssueArgs>();
    CLI::App* s = Sub(op, "issue",
                      "Issue an operator credential (offline): a P-256 key (0600) and a client certificate CN=ID; "
                      "prints its SHA-256 fingerprint",
                      "agentroot operator issue --ca-dir /secure/operator-ca --id alice --name \"Alice Doe\" --out ./alice");
    s->add_option("--ca-dir", args->ca_dir, "The operator CA directory (ca-init)")->required();
    s->add_option("--id", args->id, "Operator id (the certificate's CN)")->required();
    s->add_option("--name", args->name, "The person's full name");
    s->add_option("--days", args->days, "Validity in days")->capture_default_str();
    s->add_option("--out", args->out_dir, "Directory for ID.key and ID.crt")->required();
    s->callback([=, &select] {
      select({"operator issue", [args](Context& ctx) -> Result<Json> {
                AR_ASSIGN_OR_RETURN(Json j, ap::OperatorIssue(*args));
                ctx.notes.push_back("certificate SHA-256 (the verifier's bootstrap_operators certificate_sha256): " +
                                    j["certificate_sha256"].get<std::string>());
                return j;
              }});
    });
  }
  {
    auto args = std::make_shared<ap::OperatorAddArgs>();
    CLI::App* s = Sub(op, "add", "Register an operator with roles and a certificate (role infra)",
                      "agentroot operator add bob --name \"Bob Roe\" --role owner --role reviewer --cert bob.crt");
    s->add_option("ID", args->id, "Operator id")->required();
    s->add_option("--name", args->name, "Display name")->required();
    s->add_option("--role", args->roles, "infra, owner, reviewer or auditor (repeatable)")->required()->delimiter(',');
    s->add_option("--cert", args->cert_file, "The operator's certificate (PEM), from `operator issue`")->required();
    s->callback([=, &select] { select({"operator add", Online([args](ap::AdminApi& api) { return ap::OperatorAdd(api, *args); })}); });
  }
  {
    CLI::App* s = Sub(op, "list", "List operators (role infra or auditor)", "agentroot operator list");
    s->callback([&select] { select({"operator list", Online([](ap::AdminApi& api) { return ap::OperatorList(api); }), ap::RenderOperators}); });
  }
  {
    CLI::App* s = Sub(op, "whoami", "Show who the verifier thinks you are", "agentroot operator whoami");
    s->callback([&select] { select({"operator whoami", Online([](ap::AdminApi& api) { return ap::OperatorWhoami(api); })}); });
  }
  {
    auto id = std::make_shared<std::string>();
    auto file = std::make_shared<std::string>();
    CLI::App* s = Sub(op, "set-cert", "Replace an operator's certificate; the old one is refused from then on (role infra)",
                      "agentroot operator set-cert bob --cert bob-2.crt");
    s->add_option("ID", *id, "Operator id")->required();
    s->add_option("--cert", *file, "The new certificate (PEM)")->required();
    s->callback([=, &select] { select({"operator set-cert", Online([id, file](ap::AdminApi& api) { return ap::OperatorSetCert(api, *id, *file); })}); });
  }
  {
    auto id = std::make_shared<std::string>();
    auto roles = std::make_shared<std::vector<std::string>>();
    CLI::App* s = Sub(op, "set-roles", "Replace an operator's roles, e.g. after a change of team (role infra; not your own)",
                      "agentroot operator set-roles bob --role reviewer --role auditor");
    s->add_option("ID", *id, "Operator id")->required();
    s->add_option("--role", *roles, "infra, owner, reviewer or auditor (repeatable)")->required()->delimiter(',');
    s->callback([=, &select] {
      select({"operator set-roles", Online([id, roles](ap::AdminApi& api) { return ap::OperatorSetRoles(api, *id, *roles); })});
    });
  }
  for (const char* verb : {"revoke-cert", "disable", "enable"}) {
    auto id = std::make_shared<std::string>();
    std::string v = verb;
    std::string description =
        v == "revoke-cert" ? "Clear an operator's certificate: it is refused from then on (role infra)"
        : v == "disable"   ? "Disable an operator; agents for which they were the last active owner are suspended (role infra)"
                           : "Enable a disabled operator (their agents stay suspended: resume them) (role infra)";
    CLI::App* s = Sub(op, v, description, "agentroot operator " + v + " bob");
    s->add_option("ID", *id, "Operator id")->required();
    s->callback([=, &select] {
      select({"operator " + v, Online([id, v](ap::AdminApi& api) { return ap::OperatorAction(api, *id, v); })});
    });
  }

  // ---- trust --------------------------------------------------------------
  CLI::App* trust = app.add_subcommand("trust", "Trust anchors: TPM manufacturer CAs, pinned EKs, auto-approval");
  trust->require_subcommand(1);
  trust->footer("Examples:\n  agentroot trust list\n  agentroot trust pin-ek --ek-public ek.pub --group lab");
  {
    CLI::App* s = Sub(trust, "list", "List trust anchors (from the store and the verifier's config)", "agentroot trust list");
    s->callback([&select] { select({"trust list", Online([](ap::AdminApi& api) { return ap::TrustList(api); }), ap::RenderTrustAnchors}); });
  }
  {
    auto file = std::make_shared<std::string>();
    auto description = std::make_shared<std::string>();
    CLI::App* s = Sub(trust, "add-ca", "Trust a TPM manufacturer CA certificate (role infra)",
                      "agentroot trust add-ca nuvoton-root.pem --description \"Nuvoton TPM root\"");
    s->add_option("FILE", *file, "One PEM CA certificate")->required();
    s->add_option("--description", *description, "Free text");
    s->callback([=, &select] { select({"trust add-ca", Online([file, description](ap::AdminApi& api) { return ap::TrustAddCa(api, *file, *description); })}); });
  }
  {
    auto args = std::make_shared<ap::TrustPinEkArgs>();
    CLI::App* s = Sub(trust, "pin-ek", "Trust one TPM by its EK (no EK certificate needed) (role infra)",
                      "tpm2_createek -c ek.ctx -G ecc -u ek.pub && agentroot trust pin-ek --ek-public ek.pub --group lab");
    auto* file = s->add_option("--ek-public", args->ek_public_file,
                               "Marshalled TPM2B_PUBLIC (tpm2_createek -u, tpm2_readpublic -o); its SHA-256 is the pin");
    auto* hash = s->add_option("--sha256", args->sha256, "The EK's SHA-256 as shown by `hosts list` (64 hex)");
    file->excludes(hash);
    s->add_option("--group", args->group, "Host group the EK may enroll into");
    s->add_option("--description", args->description, "Free text");
    s->callback([=, &select] { select({"trust pin-ek", Online([args](ap::AdminApi& api) { return ap::TrustPinEk(api, *args); })}); });
  }
  {
    auto group = std::make_shared<std::string>();
    auto description = std::make_shared<std::string>();
    CLI::App* s = Sub(trust, "auto-approve", "Approve hosts enrolling into GROUP on activation (role infra)",
                      "agentroot trust auto-approve ci-runners --description \"ephemeral CI VMs\"");
    s->add_option("GROUP", *group, "Host group")->required();
    s->add_option("--description", *description, "Free text");
    s->callback([=, &select] { select({"trust auto-approve", Online([group, description](ap::AdminApi& api) { return ap::TrustAutoApprove(api, *group, *description); })}); });
  }
  {
    auto id = std::make_shared<std::string>();
    CLI::App* s = Sub(trust, "remove", "Remove a trust anchor (role infra; config anchors cannot be removed)",
                      "agentroot trust remove ek-3f2a9c0d11e4b7a2");
    s->add_option("ID", *id, "Anchor id from `trust list`")->required();
    s->callback([=, &select] { select({"trust remove", Online([id](ap::AdminApi& api) { return ap::TrustRemove(api, *id); })}); });
  }

  // ---- hosts --------------------------------------------------------------
  CLI::App* hosts = app.add_subcommand("hosts", "Hosts: list, approve, revoke");
  hosts->require_subcommand(1);
  hosts->footer("Examples:\n  agentroot hosts list --status pending\n  agentroot hosts approve host-7c1e2d");
  {
    auto status = std::make_shared<std::string>();
    CLI::App* s = Sub(hosts, "list", "List hosts with their EK identity and last attestation",
                      "agentroot hosts list --status pending");
    s->add_option("--status", *status, "pending, approved or revoked")
        ->check(CLI::IsMember({"pending", "approved", "revoked"}));
    s->callback([=, &select] { select({"hosts list", Online([status](ap::AdminApi& api) { return ap::HostsList(api, *status); }), ap::RenderHosts}); });
  }
  for (const char* verb : {"approve", "revoke"}) {
    auto id = std::make_shared<std::string>();
    std::string v = verb;
    CLI::App* s = Sub(hosts, v,
                      v == "approve" ? "Approve a pending host (role infra)"
                                     : "Revoke a host and its outstanding tokens (role infra)",
                      "agentroot hosts " + v + " host-7c1e2d");
    s->add_option("HOST_ID", *id, "Host id from `hosts list`")->required();
    s->callback([=, &select] { select({"hosts " + v, Online([id, v](ap::AdminApi& api) { return ap::HostAction(api, *id, v); })}); });
  }

  // ---- agents -------------------------------------------------------------
  CLI::App* agents = app.add_subcommand("agents", "Agents: register, update, suspend, resume, retire");
  agents->require_subcommand(1);
  agents->footer("Examples:\n  agentroot agents list\n  agentroot agents suspend invoice-bot --reason INC-4711");
  {
    CLI::App* s = Sub(agents, "list", "List registered agents", "agentroot agents list -o csv");
    s->callback([&select] { select({"agents list", Online([](ap::AdminApi& api) { return ap::AgentsList(api); }), ap::RenderAgents}); });
  }
  {
    auto name = std::make_shared<std::string>();
    CLI::App* s = Sub(agents, "show", "Show one agent with its manifest versions and JIT grants",
                      "agentroot agents show invoice-bot");
    s->add_option("NAME", *name, "Agent name")->required();
    s->callback([=, &select] { select({"agents show", Online([name](ap::AdminApi& api) { return ap::AgentShow(api, *name); }), ap::RenderAgentDetail}); });
  }
  // register and update share their flags.
  auto agent_flags = [](CLI::App* s, const std::shared_ptr<ap::AgentArgs>& args, bool registering,
                        std::shared_ptr<std::vector<CLI::Option*>> opts) {
    s->add_option("NAME", args->name, "Agent name (the last segment of its id)")->required();
    auto* owner = s->add_option("--owner", args->owners, "Owner operator id (repeatable)")->delimiter(',');
    auto* host = s->add_option("--host", args->host.emplace(), "Run only on this host");
    auto* group = s->add_option("--group", args->group.emplace(), "Run on any approved host of this group");
    host->excludes(group);
    auto* scope = s->add_option("--scope", args->scopes, "Allowed scope (repeatable)")->delimiter(',');
    auto* aud = s->add_option("--audience", args->audiences, "Allowed audience (repeatable)")->delimiter(',');
    auto* ttl = s->add_option("--max-ttl", args->max_ttl.emplace(), "Longest token lifetime, DURATION (default 300s)");
    auto* expires = s->add_option("--expires", args->expires.emplace(), "Registration ends (YYYY-MM-DD, 00:00 UTC)");
    auto* expires_in = s->add_option("--expires-in", args->expires_in.emplace(), "Registration ends after DURATION");
    expires->excludes(expires_in);
    auto* manifest = s->add_option("--manifest", args->manifest_file.emplace(),
                                   registering ? "Manifest file (JSON: exe_sha256, files); needs a review"
                                               : "Add a new manifest version (pending review)");
    if (registering) {
      owner->required();
      scope->required();
      aud->required();
    }
    *opts = {host, group, ttl, expires, expires_in, manifest};
  };
  // Turns the options that were not given back into nullopt.
  auto settle = [](ap::AgentArgs& a, const std::vector<CLI::Option*>& o) {
    std::optional<std::string>* fields[] = {&a.host, &a.group, &a.max_ttl, &a.expires, &a.expires_in, &a.manifest_file};
    for (std::size_t i = 0; i < o.size(); ++i) {
      if (o[i]->count() == 0) fields[i]->reset();
    }
  };
  {
    auto args = std::make_shared<ap::AgentArgs>();
    auto opts = std::make_shared<std::vector<CLI::Option*>>();
    CLI::App* s = Sub(agents, "register", "Register an agent (role owner; you must be among the owners)",
                      "agentroot agents register invoice-bot --owner alice --owner bob --group payments \\\n"
                      "      --scope invoices:read --audience https://erp.example --max-ttl 5m --expires-in 90d \\\n"
                      "      --manifest invoice-bot.manifest.json");
    agent_flags(s, args, true, opts);
    s->callback([=, &select] {
      settle(*args, *opts);
      select({"agents register", Online([args](ap::AdminApi& api) { return ap::AgentRegister(api, *args, Now()); })});
    });
  }
  {
    auto args = std::make_shared<ap::AgentArgs>();
    auto opts = std::make_shared<std::vector<CLI::Option*>>();
    CLI::App* s = Sub(agents, "update",
                      "Change an agent's registration; --manifest adds a new version that needs a review "
                      "(an owner, or role infra)",
                      "agentroot agents update invoice-bot --scope invoices:read --scope invoices:write --manifest v2.json");
    agent_flags(s, args, false, opts);
    s->callback([=, &select] {
      settle(*args, *opts);
      select({"agents update", Online([args](ap::AdminApi& api) { return ap::AgentUpdate(api, *args, Now()); })});
    });
  }
  for (const char* verb : {"suspend", "resume", "retire"}) {
    auto name = std::make_shared<std::string>();
    auto reason = std::make_shared<std::string>();
    std::string v = verb;
    std::string description = v == "suspend" ? "Suspend an agent and revoke its outstanding tokens"
                              : v == "resume" ? "Resume a suspended agent (it needs an active owner)"
                                              : "Retire an agent for good and revoke its outstanding tokens";
    CLI::App* s = Sub(agents, v, description + " (an owner, or role infra)",
                      "agentroot agents " + v + " invoice-bot --reason \"INC-4711\"");
    s->add_option("NAME", *name, "Agent name")->required();
    s->add_option("--reason", *reason, "Why (recorded in the audit log)");
    s->callback([=, &select] { select({"agents " + v, Online([name, reason, v](ap::AdminApi& api) { return ap::AgentAction(api, *name, v, *reason); })}); });
  }

  // ---- reviews ------------------------------------------------------------
  CLI::App* reviews = app.add_subcommand("reviews", "Manifest reviews (separation of duties: not by an owner)");
  reviews->require_subcommand(1);
  reviews->footer("Examples:\n  agentroot reviews list\n  agentroot reviews approve invoice-bot 2 --comment \"diff checked\"");
  {
    CLI::App* s = Sub(reviews, "list", "List manifest versions waiting for review, oldest first", "agentroot reviews list");
    s->callback([&select] { select({"reviews list", Online([](ap::AdminApi& api) { return ap::ReviewsList(api); }), ap::RenderReviews}); });
  }
  for (bool approve : {true, false}) {
    auto name = std::make_shared<std::string>();
    auto version = std::make_shared<int64_t>(0);
    auto comment = std::make_shared<std::string>();
    std::string v = approve ? "approve" : "reject";
    CLI::App* s = Sub(reviews, v,
                      approve ? "Approve a manifest version (role reviewer, not an owner of the agent)"
                              : "Reject a manifest version with a comment (role reviewer, not an owner of the agent)",
                      "agentroot reviews " + v + " invoice-bot 2 --comment \"" +
                          (approve ? "checked the diff" : "binary not from our CI") + "\"");
    s->add_option("NAME", *name, "Agent name")->required();
    s->add_option("VERSION", *version, "Manifest version")->required();
    auto* c = s->add_option("--comment", *comment, "Comment (recorded)");
    if (!approve) c->required();
    s->callback([=, &select] { select({"reviews " + v, Online([=](ap::AdminApi& api) { return ap::ReviewDecide(api, *name, *version, approve, *comment); })}); });
  }

  // ---- jit ----------------------------------------------------------------
  CLI::App* jit = app.add_subcommand("jit", "Just-in-time elevation: time-boxed extra scopes, approved by someone else");
  jit->require_subcommand(1);
  jit->footer("Examples:\n  agentroot jit request invoice-bot --scope invoices:approve --for 2h --reason \"quarter close\"\n  agentroot jit approve jit-5d0c1f");
  {
    auto args = std::make_shared<ap::JitRequestArgs>();
    CLI::App* s = Sub(jit, "request", "Request extra scopes for a bounded time (an owner of the agent)",
                      "agentroot jit request invoice-bot --scope invoices:approve --for 2h --reason \"quarter close\"");
    s->add_option("NAME", args->name, "Agent name")->required();
    s->add_option("--scope", args->scopes, "Extra scope (repeatable)")->required()->delimiter(',');
    s->add_option("--for", args->duration, "DURATION of the window, from approval")->required();
    s->add_option("--reason", args->reason, "Why (recorded)")->required();
    s->callback([=, &select] { select({"jit request", Online([args](ap::AdminApi& api) { return ap::JitRequest(api, *args); }), ap::RenderJitGrants}); });
  }
  {
    auto agent = std::make_shared<std::string>();
    CLI::App* s = Sub(jit, "list", "List JIT grants, newest first", "agentroot jit list --agent invoice-bot");
    s->add_option("--agent", *agent, "Only this agent's grants");
    s->callback([=, &select] { select({"jit list", Online([agent](ap::AdminApi& api) { return ap::JitList(api, *agent); }), ap::RenderJitGrants}); });
  }
  for (const char* verb : {"approve", "reject", "revoke"}) {
    auto id = std::make_shared<std::string>();
    auto comment = std::make_shared<std::string>();
    std::string v = verb;
    std::string description =
        v == "approve"  ? "Approve a pending grant; its window starts now (not the requester: infra, reviewer or another owner)"
        : v == "reject" ? "Reject a pending grant (not the requester: infra, reviewer or another owner)"
                        : "End a grant now and revoke the agent's outstanding tokens (requester, an owner, or infra)";
    CLI::App* s = Sub(jit, v, description, "agentroot jit " + v + " jit-5d0c1f");
    s->add_option("ID", *id, "Grant id from `jit list`")->required();
    if (v != "revoke") s->add_option("--comment", *comment, "Comment (recorded)");
    s->callback([=, &select] { select({"jit " + v, Online([id, comment, v](ap::AdminApi& api) { return ap::JitAction(api, *id, v, *comment); }), ap::RenderJitGrants}); });
  }

  // ---- revoke -------------------------------------------------------------
  {
    auto args = std::make_shared<ap::RevokeArgs>();
    auto agent = std::make_shared<std::string>();
    auto host = std::make_shared<std::string>();
    auto jti = std::make_shared<std::string>();
    CLI::App* s = Sub(&app, "revoke", "Revoke outstanding tokens: of an agent, of a host, or one token by jti",
                      "agentroot revoke --agent invoice-bot");
    auto* a = s->add_option("--agent", *agent, "Every outstanding token of this agent");
    auto* h = s->add_option("--host", *host, "Every outstanding token issued to this host");
    auto* j = s->add_option("--jti", *jti, "One token");
    s->callback([=, &select] {
      args->agent = Given(a, *agent);
      args->host = Given(h, *host);
      args->jti = Given(j, *jti);
      select({"revoke", Online([args](ap::AdminApi& api) { return ap::Revoke(api, *args); })});
    });
  }

  // ---- audit --------------------------------------------------------------
  CLI::App* audit = app.add_subcommand("audit", "The hash-chained audit log: export and offline verification");
  audit->require_subcommand(1);
  audit->footer("Examples:\n  agentroot audit export --from 2025-03-01 --out march.jsonl\n  agentroot audit verify march.jsonl --anchor SEQ:HASH");
  {
    auto args = std::make_shared<ap::AuditExportArgs>();
    auto from = std::make_shared<std::string>();
    auto to = std::make_shared<std::string>();
    CLI::App* s = Sub(audit, "export",
                      "Export audit records as JSON lines, exactly as received (role auditor); the anchor goes to stderr",
                      "agentroot audit export --from 2025-03-01 --to 2025-04-01 --out march.jsonl");
    auto* f = s->add_option("--from", *from, "TIME: first record at or after");
    auto* t = s->add_option("--to", *to, "TIME: last record before");
    s->add_option("--out", args->out, "Write to FILE (never overwritten); default standard output");
    s->callback([=, &select] {
      args->from = Given(f, *from);
      args->to = Given(t, *to);
      Action act{"audit export", [args](Context& ctx) -> Result<Json> {
                   AR_ASSIGN_OR_RETURN(ap::AdminApi * api, ctx.Api());
                   AR_ASSIGN_OR_RETURN(Json j, ap::AuditExport(*api, *args, &ctx.stdout_extra));
                   ctx.notes.push_back("audit export: " + std::to_string(j["records"].get<int64_t>()) +
                                       " records; anchor " + j["anchor"].get<std::string>() +
                                       " (the record before the first exported one; verify with "
                                       "`agentroot audit verify FILE --anchor " + j["anchor"].get<std::string>() + "`)");
                   return j;
                 }};
      // The lines themselves are the output; no table after them.
      act.render = [](const Json&) { return std::vector<ap::Table>{}; };
      select(std::move(act));
    });
  }
  {
    auto file = std::make_shared<std::string>();
    auto anchor = std::make_shared<std::string>();
    CLI::App* s = Sub(audit, "verify",
                      "Check an export's hash chain offline; names the first bad record; prints the head to keep",
                      "agentroot audit verify march.jsonl --anchor 41877:9c1e...e0");
    s->add_option("FILE", *file, "Exported JSON lines")->required();
    auto* a = s->add_option("--anchor", *anchor, "SEQ:HASH the export must continue (from `audit export` or the "
                                                  "previous verify's head)");
    s->callback([=, &select] {
      auto given = Given(a, *anchor);
      select({"audit verify", [file, given](Context& ctx) -> Result<Json> {
                AR_ASSIGN_OR_RETURN(Json j, ap::AuditVerify(*file, given));
                if (j["anchored_at_first_record"].get<bool>()) {
                  ctx.notes.push_back("no --anchor: anchored at the first record's own seq-1/prev_hash (" +
                                      j["anchor"].get<std::string>() +
                                      "); this proves nothing about records before it");
                }
                ctx.notes.push_back("verified; keep the head " + j["head"].get<std::string>() +
                                    " to check that the next export continues it");
                return j;
              }});
    });
  }

  // ---- inventory ----------------------------------------------------------
  {
    auto args = std::make_shared<ap::InventoryArgs>();
    auto expiring = std::make_shared<int>(0);
    auto unused = std::make_shared<int>(0);
    auto usage = std::make_shared<int>(0);
    auto fail = std::make_shared<bool>(false);
    CLI::App* s = Sub(&app, "inventory",
                      "Every agent: owners, where, scopes, JIT in force, access end, last attestation and token, "
                      "review state; and the findings",
                      "agentroot inventory --expiring-days 14 --unused-days 30 --fail-on-findings");
    auto* e = s->add_option("--expiring-days", *expiring, "Flag registrations ending within N days (default 30)");
    auto* u = s->add_option("--unused-days", *unused, "Flag agents without a token for N days (default 30)");
    auto* g = s->add_option("--usage-days", *usage, "Window for scopes actually used (default 30)");
    s->add_flag("--fail-on-findings", *fail, "Exit 8 when there is any finding");
    s->callback([=, &select] {
      if (e->count()) args->expiring_days = *expiring;
      if (u->count()) args->unused_days = *unused;
      if (g->count()) args->usage_days = *usage;
      Action act{"inventory", Online([args](ap::AdminApi& api) { return ap::Inventory(api, *args); }),
                 ap::RenderInventory};
      act.after = [fail](const Json& j, Context& ctx) {
        const auto it = j.find("findings");
        const std::size_t n = it != j.end() && it->is_array() ? it->size() : 0;
        if (*fail && n > 0) {
          ctx.notes.push_back("agentroot: inventory: " + std::to_string(n) + " findings");
          return static_cast<int>(ap::kExitFindings);
        }
        return static_cast<int>(ap::kExitOk);
      };
      select(std::move(act));
    });
  }

  // ---- config -------------------------------------------------------------
  CLI::App* cfg = app.add_subcommand("config", "The CLI's own settings");
  cfg->require_subcommand(1);
  cfg->footer("Example:\n  agentroot config show");
  {
    CLI::App* s = Sub(cfg, "show", "Show the resolved settings (paths only, never key material)",
                      "agentroot config show");
    s->callback([&select] {
      select({"config show", [](Context& ctx) -> Result<Json> {
                Json j = ap::SettingsToJson(ctx.settings);
                if (!ctx.settings.certificate.empty()) {
                  auto pem = ap::ReadLocalFile(ctx.settings.certificate, "operator certificate");
                  auto info = pem.ok() ? ap::InspectCertificate(*pem) : Result<ap::CertificateInfo>(pem.status());
                  if (info.ok()) {
                    j["certificate_subject"] = info->subject;
                    j["certificate_not_after"] = info->not_after;
                    j["certificate_sha256"] = info->sha256_hex;
                  } else {
                    j["certificate_problem"] = ap::OneLine(info.status().message());
                  }
                }
                return j;
              }});
    });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --help-all
    if (std::string unknown = UnknownCommand(app, argc, argv); !unknown.empty()) {
      std::cerr << "agentroot: usage: " << unknown << "\n";
      return ap::kExitUsage;
    }
    std::cerr << "agentroot: usage: " << ap::OneLine(e.what()) << " (see agentroot --help)\n";
    return ap::kExitUsage;
  }
  if (!action.run) {
    std::cerr << "agentroot: usage: no command given (see agentroot --help)\n";
    return ap::kExitUsage;
  }

  Context ctx;
  ap::CliFlags flags;
  flags.config = Given(o_config, config);
  flags.verifier = Given(o_verifier, verifier);
  flags.ca = Given(o_ca, ca);
  flags.certificate = Given(o_cert, cert);
  flags.private_key = Given(o_key, key);
  flags.output = Given(o_output, output);
  flags.env_config = Env("AGENTROOT_CONFIG");
  flags.home = Env("HOME");
  auto fail = [&](const Status& status) {
    std::cerr << "agentroot: " << action.what << ": " << ap::OneLine(status.message()) << "\n";
    return ap::ExitCodeForStatus(status);
  };
  auto settings = ap::ResolveSettings(flags);
  if (!settings.ok()) return fail(settings.status());
  ctx.settings = std::move(*settings);
  const ap::OutputFormat format = ap::ParseOutputFormat(ctx.settings.output).value_or(ap::OutputFormat::kTable);

  Result<Json> result = [&]() -> Result<Json> {
    try {
      return action.run(ctx);
    } catch (const std::exception& e) {
      return agentroot::common::InternalError(std::string("unexpected: ") + e.what());
    }
  }();
  if (!result.ok()) return fail(result.status());

  std::cout << ctx.stdout_extra;
  std::cout << ap::RenderOutput(format, *result, action.render(*result));
  std::cout.flush();
  const int code = action.after ? action.after(*result, ctx) : 0;
  for (const auto& note : ctx.notes) std::cerr << note << "\n";
  return code;
}
