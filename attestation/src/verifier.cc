#include "agentroot/attestation/verifier.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "agentroot/attestation/make_credential.h"
#include "agentroot/attestation/measurement.h"
#include "agentroot/attestation/token_policy.h"
#include "agentroot/attestation/tpm_evidence.h"
#include "agentroot/attestation/tpm_public.h"
#include "agentroot/common/jwt.h"
#include "agentroot/common/random.h"
#include "verifier_internal.h"

namespace agentroot::attestation {

using common::Bytes;
using common::ByteView;
using common::Json;
using common::Result;
using common::Status;
using common::StatusCode;
using store::AuditDecision;
using store::AuditRecord;

namespace {

constexpr char kActor[] = "verifier";
constexpr int64_t kActivationTtl = 300;

using internal::Audit;
using internal::Problem;

// A ReplayCache over the store: proof jtis are shared by every replica and
// survive restarts (THREATS.md #8). The check is a read; the jti is recorded
// in the same transaction as what the proof is spent on (the token and its
// audit record, or a refusal's audit record), so a token request makes one
// durable commit, not two. A path that spends the proof on nothing else
// still records it when the cache goes out of scope.
class StoreReplayCache final : public ReplayCache {
 public:
  explicit StoreReplayCache(store::Store& store) : store_(store) {}
  StoreReplayCache(const StoreReplayCache&) = delete;
  StoreReplayCache& operator=(const StoreReplayCache&) = delete;
  ~StoreReplayCache() override {
    if (pending_) store_.RecordProofJti(pending_->jti, pending_->expires_at).IgnoreError();
  }

  Status CheckAndRecord(std::string_view id, int64_t expires_at) override {
    AR_ASSIGN_OR_RETURN(bool recorded, store_.ProofJtiRecorded(id));
    if (recorded) return common::AlreadyExistsError("replay: identifier already used");
    pending_ = store::ProofJti{std::string(id), expires_at};
    return Status();
  }

  // The checked, not yet recorded proof (null when none).
  const store::ProofJti* pending() const { return pending_ ? &*pending_ : nullptr; }
  // The caller's transaction recorded it.
  void Spent() { pending_.reset(); }

  // Appends a refusal's audit record, recording the pending proof with it.
  // Best effort, like VerifierCore::AuditBestEffort.
  void AuditRefusal(const AuditRecord& record) {
    if (pending_) {
      if (store_.AppendAuditSpendingProof(record, *pending_).ok()) pending_.reset();
      return;  // otherwise the destructor records the proof
    }
    store_.AppendAudit(record).status().IgnoreError();
  }

 private:
  store::Store& store_;
  std::optional<store::ProofJti> pending_;
};

// Parsed TPM2B_PUBLIC areas by their exact bytes. Parsing (and the key's
// RFC 7638 thumbprint) is a pure function of the bytes, and the same hosts'
// AKs and agents' keys come back on every attest: together they cost about
// as much as the quote verification. Bounded: cleared when full.
struct ParsedTpmPublic {
  explicit ParsedTpmPublic(TpmPublic k) : key(std::move(k)) {}
  TpmPublic key;
  mutable std::once_flag jkt_once;
  mutable Result<std::string> jkt = common::InternalError("not computed");
};

Result<std::shared_ptr<const ParsedTpmPublic>> ParseTpmPublicCached(ByteView tpm2b_public) {
  constexpr std::size_t kMaxEntries = 4096;
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<const ParsedTpmPublic>> cache;  // guarded by mu
  std::string bytes = common::ToString(tpm2b_public);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(bytes); it != cache.end()) return it->second;
  }
  AR_ASSIGN_OR_RETURN(TpmPublic key, TpmPublic::Parse(tpm2b_public));
  auto entry = std::make_shared<const ParsedTpmPublic>(std::move(key));
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kMaxEntries) cache.clear();
  cache.emplace(std::move(bytes), entry);
  return entry;
}

Result<std::string> ThumbprintOf(const ParsedTpmPublic& parsed) {
  std::call_once(parsed.jkt_once, [&parsed] {
    parsed.jkt = [&parsed]() -> Result<std::string> {
      AR_ASSIGN_OR_RETURN(common::EvpPkeyPtr pkey, parsed.key.ToOpenSslKey());
      AR_ASSIGN_OR_RETURN(common::Jwk jwk, common::Jwk::FromPublicKey(pkey.get()));
      return jwk.Thumbprint();
    }();
  });
  return parsed.jkt;
}

}  // namespace

Status RateLimitedError(std::string_view type, std::string_view detail, int64_t retry_after_seconds) {
  return common::ResourceExhaustedError(std::string(type) + ": " + std::string(detail) + " (retry after " +
                                        std::to_string(std::max<int64_t>(1, retry_after_seconds)) + " s)");
}

std::optional<int64_t> RetryAfterOf(const Status& status) {
  if (status.code() != StatusCode::kResourceExhausted) return std::nullopt;
  std::string_view m = status.message();
  constexpr std::string_view kOpen = " (retry after ";
  std::size_t at = m.rfind(kOpen);
  if (at == std::string_view::npos || !m.ends_with(" s)")) return std::nullopt;
  std::string_view digits = m.substr(at + kOpen.size(), m.size() - 3 - at - kOpen.size());
  if (digits.empty() || digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return std::stoll(std::string(digits));
}

Result<std::shared_ptr<const VerifierCore::IssuerKeys>> VerifierCore::MakeIssuerKeys(
    std::shared_ptr<const common::Signer> signer, const std::vector<common::Jwk>& published) {
  if (!signer) return common::InvalidArgumentError("verifier: an issuer key is required");
  if (signer->public_jwk().kid().empty()) return common::InvalidArgumentError("verifier: issuer key needs a kid");
  auto out = std::make_shared<IssuerKeys>();
  auto add = [&](const common::Jwk& jwk, common::JwsAlgorithm alg) -> Status {
    for (const common::Jwk& have : out->jwks) {
      if (have.kid() == jwk.kid()) return common::InvalidArgumentError("issuer keys: kid \"" + jwk.kid() + "\" twice");
    }
    Json j = jwk.ToJson();
    j["alg"] = std::string(common::JwsAlgorithmName(alg));
    AR_ASSIGN_OR_RETURN(common::Jwk with_alg, common::Jwk::FromJson(j));
    AR_ASSIGN_OR_RETURN(common::VerificationKey key, common::VerificationKey::Create(with_alg, {alg}));
    out->jwks.push_back(with_alg);
    out->keys.push_back(std::move(key));
    return Status::Ok();
  };
  AR_RETURN_IF_ERROR(add(signer->public_jwk(), signer->algorithm()));
  for (const common::Jwk& other : published) {
    if (other.kid().empty()) return common::InvalidArgumentError("issuer keys: a published key needs a kid");
    AR_ASSIGN_OR_RETURN(common::JwsAlgorithm alg, common::ParseJwsAlgorithm(other.alg()));
    AR_RETURN_IF_ERROR(add(other, alg));
  }
  out->signer = std::move(signer);
  return std::shared_ptr<const IssuerKeys>(std::move(out));
}

Result<std::unique_ptr<VerifierCore>> VerifierCore::Create(VerifierConfig config, std::shared_ptr<store::Store> store,
                                                           std::shared_ptr<const common::Signer> issuer_key,
                                                           std::vector<common::Jwk> previous_issuer_keys,
                                                           const common::Clock& clock) {
  if (config.issuer.empty() || config.token_endpoint.empty() || config.trust_domain.empty()) {
    return common::InvalidArgumentError("verifier config: issuer, token_endpoint and trust_domain are required");
  }
  if (!store || !issuer_key) return common::InvalidArgumentError("verifier: store and issuer key are required");
  if (config.token_rate_per_minute < 1 || config.challenge_rate_per_minute < 1) {
    return common::InvalidArgumentError("verifier config: rate limits must be at least 1 per minute");
  }
  // Manufacturer CAs may also come only from the registry (trust anchors).
  std::unique_ptr<EkCertificateValidator> ek_validator;
  if (!config.manufacturer_roots_pem.empty()) {
    AR_ASSIGN_OR_RETURN(ek_validator, EkCertificateValidator::Create(config.manufacturer_roots_pem));
  }
  AR_ASSIGN_OR_RETURN(auto keys, MakeIssuerKeys(std::move(issuer_key), previous_issuer_keys));
  return std::unique_ptr<VerifierCore>(
      new VerifierCore(std::move(config), std::move(store), std::move(keys), std::move(ek_validator), clock));
}

std::shared_ptr<const VerifierCore::IssuerKeys> VerifierCore::issuer_keys() const {
  std::lock_guard<std::mutex> lock(keys_mu_);
  return issuer_keys_;
}

Result<bool> VerifierCore::RotateIssuerKeys(std::shared_ptr<const common::Signer> signer,
                                            std::vector<common::Jwk> published, std::string_view actor) {
  std::lock_guard<std::mutex> rotating(rotate_mu_);
  const std::string proposed_kid = signer ? signer->public_jwk().kid() : std::string();
  const std::shared_ptr<const IssuerKeys> old = issuer_keys();
  const std::string old_kid = old->signer->public_jwk().kid();
  auto kids = [](const IssuerKeys& k) {
    std::vector<std::string> out;
    for (std::size_t i = 1; i < k.jwks.size(); ++i) out.push_back(k.jwks[i].kid());
    return out;
  };
  auto refuse = [&](const std::string& new_kid, const std::string& why) -> Status {
    AuditBestEffort(Audit(std::string(actor), "issuer_key.rotate", new_kid, AuditDecision::kDeny, {why},
                          {{"old_kid", old_kid}, {"new_kid", new_kid}}));
    return common::FailedPreconditionError("issuer key rotation refused: " + why);
  };
  auto next = MakeIssuerKeys(std::move(signer), published);
  if (!next.ok()) return refuse(proposed_kid, next.status().message());
  const IssuerKeys& n = **next;
  const std::string new_kid = n.signer->public_jwk().kid();
  // kid -> thumbprint of a snapshot, to compare keys, not only names.
  auto find = [](const IssuerKeys& k, const std::string& kid) -> std::optional<std::string> {
    for (const common::Jwk& j : k.jwks) {
      if (j.kid() == kid) return j.Thumbprint();
    }
    return std::nullopt;
  };
  for (const common::Jwk& j : n.jwks) {
    auto before = find(*old, j.kid());
    if (before && *before != j.Thumbprint()) return refuse(new_kid, "kid " + j.kid() + " now names another key");
  }
  if (new_kid != old_kid && !find(*old, new_kid)) {
    return refuse(new_kid, "the new signing key " + new_kid + " must be published (issuer_key.published_key_ids) "
                           "before it signs");
  }
  if (!find(n, old_kid)) {
    return refuse(new_kid, "the current signing key " + old_kid + " must stay published until what it signed "
                           "has expired; retire it in a later rotation");
  }
  if (new_kid == old_kid && kids(n) == kids(*old)) return false;
  AuditRecord audit = Audit(std::string(actor), "issuer_key.rotate", new_kid, AuditDecision::kInfo, {},
                            {{"old_kid", old_kid}, {"new_kid", new_kid}, {"old_published", kids(*old)},
                             {"new_published", kids(n)}});
  AR_RETURN_IF_ERROR(store_->AppendAudit(audit).status());
  std::lock_guard<std::mutex> lock(keys_mu_);
  issuer_keys_ = std::move(next).value();
  return true;
}

Json VerifierCore::Metadata() const {
  return Json{{"issuer", config_.issuer},
              {"token_endpoint", config_.token_endpoint},
              {"jwks_uri", config_.issuer + "/.well-known/jwks.json"},
              {"introspection_endpoint", config_.issuer + "/oauth/introspect"},
              {"revocation_endpoint", config_.issuer + "/oauth/revoke"},
              {"grant_types_supported", {"urn:ietf:params:oauth:grant-type:token-exchange"}},
              {"token_endpoint_auth_methods_supported", {"none"}},
              {"dpop_signing_alg_values_supported", {"ES256", "PS256", "RS256"}},
              {"token_endpoint_auth_signing_alg_values_supported", {"ES256"}}};
}

Json VerifierCore::Jwks() const {
  Json keys = Json::array();
  for (const common::Jwk& jwk : issuer_keys()->jwks) {
    Json j = jwk.ToJson();
    j["use"] = "sig";
    keys.push_back(std::move(j));
  }
  return Json{{"keys", keys}};
}

void VerifierCore::AuditBestEffort(const AuditRecord& record) {
  // Denials are recorded too; a failure to record one must not turn a
  // refusal into anything else, so its status is deliberately dropped.
  store_->AppendAudit(record).status().IgnoreError();
}

// ---------------------------------------------------------------- enrollment

Result<EnrollChallenge> VerifierCore::Enroll(const EnrollRequest& request) {
  auto ek = TpmPublic::Parse(request.ek_public);
  if (!ek.ok()) return Problem(StatusCode::kInvalidArgument, problem::kEkUntrusted, ek.status().message());
  const Bytes ek_sha256 = common::Sha256(request.ek_public);
  const std::string host_id = "host-" + common::HexEncode(ByteView(ek_sha256).first(8));
  // The EK is trusted by its certificate (a manufacturer CA from the
  // configuration or the registry) or by an operator's pin of its hash.
  AR_ASSIGN_OR_RETURN(std::vector<store::TrustAnchor> anchors, store_->ListTrustAnchors());
  const std::string ek_hex = common::HexEncode(ek_sha256);
  const bool pinned = std::any_of(anchors.begin(), anchors.end(), [&](const store::TrustAnchor& a) {
    return a.kind == store::TrustAnchorKind::kEkPin && a.value == ek_hex &&
           (a.host_group.empty() || a.host_group == request.host_group);
  });
  Status ek_check = Status::Ok();
  if (!pinned) {
    auto validator = CurrentEkValidator(anchors);
    ek_check = validator.ok()
                   ? (*validator)->Validate(request.ek_certificate, request.ek_intermediates_pem, *ek).status()
                   : validator.status();
  }
  if (!ek_check.ok()) {
    AuditBestEffort(Audit(kActor, "host.enroll", host_id, AuditDecision::kDeny, {std::string(problem::kEkUntrusted)},
                          {{"detail", ek_check.message()}}));
    return Problem(StatusCode::kUnauthenticated, problem::kEkUntrusted, ek_check.message());
  }
  auto ak = TpmPublic::Parse(request.ak_public);
  if (!ak.ok()) return Problem(StatusCode::kInvalidArgument, problem::kAkInvalid, ak.status().message());
  if (Status s = CheckAttestationKey(*ak); !s.ok()) {
    return Problem(StatusCode::kPermissionDenied, problem::kAkInvalid, s.message());
  }
  AR_ASSIGN_OR_RETURN(common::SecretBytes secret, common::RandomSecret(32));
  AR_ASSIGN_OR_RETURN(CredentialChallenge challenge, MakeCredential(*ek, ak->name(), secret));
  AR_ASSIGN_OR_RETURN(std::string activation_id, common::RandomToken(32));
  // Everything the host will become lives in the single-use activation nonce
  // until the TPM has proven the AK: nothing is half-written before that.
  Json pending = {{"host_id", host_id},
                  {"secret_sha256", common::HexEncode(common::Sha256(secret.Reveal()))},
                  {"ek_public", common::Base64UrlEncode(request.ek_public)},
                  // A pinned EK is trusted by its hash: a certificate that did not chain is not kept.
                  {"ek_certificate", pinned ? std::string() : common::Base64UrlEncode(request.ek_certificate)},
                  {"ek_trust", pinned ? "pinned" : "certificate"},
                  {"ak_public", common::Base64UrlEncode(request.ak_public)},
                  {"host_group", request.host_group}};
  store::Nonce nonce;
  nonce.value = activation_id;
  nonce.purpose = "enroll";
  nonce.bound_data = common::ToBytes(pending.dump());
  nonce.expires_at = clock_.NowUnixSeconds() + kActivationTtl;
  AR_RETURN_IF_ERROR(store_->CreateNonce(nonce));
  return EnrollChallenge{host_id, activation_id, std::move(challenge.credential_blob),
                         std::move(challenge.encrypted_secret), nonce.expires_at};
}

Result<ActivationResult> VerifierCore::Activate(std::string_view host_id, std::string_view activation_id,
                                                ByteView secret) {
  const int64_t now = clock_.NowUnixSeconds();
  auto bound = store_->ConsumeNonce(activation_id, "enroll", now);
  if (!bound.ok()) {
    return Problem(StatusCode::kUnauthenticated, problem::kNonceInvalid,
                   "unknown, expired or used activation: " + bound.status().message());
  }
  auto pending = common::ParseJsonStrict(common::ToString(*bound));
  if (!pending.ok()) return common::InternalError("activation record unreadable");
  const Json& p = *pending;
  bool secret_ok = common::ConstantTimeEquals(common::AsBytes(common::HexEncode(common::Sha256(secret))),
                                              common::AsBytes(p["secret_sha256"].get<std::string>()));
  if (p["host_id"] != std::string(host_id) || !secret_ok) {
    AuditBestEffort(Audit(kActor, "host.activate", std::string(host_id), AuditDecision::kDeny,
                          {std::string(problem::kActivationFailed)}));
    // The activation is consumed: a wrong answer costs the whole enrollment.
    return Problem(StatusCode::kUnauthenticated, problem::kActivationFailed,
                   "the credential was not recovered by the TPM holding this EK and AK");
  }
  store::Host host;
  host.id = p["host_id"].get<std::string>();
  host.ek_public = *common::Base64UrlDecode(p["ek_public"].get<std::string>());
  host.ek_certificate = *common::Base64UrlDecode(p["ek_certificate"].get<std::string>());
  host.ak_public = *common::Base64UrlDecode(p["ak_public"].get<std::string>());
  AR_ASSIGN_OR_RETURN(TpmPublic ak, TpmPublic::Parse(host.ak_public));
  host.ak_name = ak.name();
  host.host_group = p["host_group"].get<std::string>();

  ActivationResult result;
  result.host_id = host.id;
  auto existing = store_->GetHostByEkHash(common::Sha256(host.ek_public));
  if (existing.ok()) {
    result.status = existing->status;
    if (existing->ak_name == host.ak_name) return result;  // a retry of the same enrollment
    // A known EK with a new AK: explicit, audited, never silent.
    AuditRecord audit = Audit(kActor, "host.reenroll", host.id, AuditDecision::kInfo, {},
                              {{"old_ak_name", common::HexEncode(existing->ak_name)},
                               {"new_ak_name", common::HexEncode(host.ak_name)}});
    AR_RETURN_IF_ERROR(store_->ReplaceAk(host.id, host.ak_public, host.ak_name, &audit));
    result.reenrolled = true;
    return result;
  }
  AuditRecord created = Audit(kActor, "host.enroll", host.id, AuditDecision::kAllow, {},
                              {{"host_group", host.host_group}, {"ak_name", common::HexEncode(host.ak_name)},
                               {"ek_trust", p.value("ek_trust", "certificate")}});
  AR_RETURN_IF_ERROR(store_->CreateHost(host, &created).status());
  result.status = store::HostStatus::kPending;
  AR_ASSIGN_OR_RETURN(std::vector<store::TrustAnchor> anchors, store_->ListTrustAnchors());
  const bool auto_approve =
      std::find(config_.auto_approve_groups.begin(), config_.auto_approve_groups.end(), host.host_group) !=
          config_.auto_approve_groups.end() ||
      std::any_of(anchors.begin(), anchors.end(), [&](const store::TrustAnchor& a) {
        return a.kind == store::TrustAnchorKind::kAutoApprove && a.host_group == host.host_group;
      });
  if (auto_approve) {
    AuditRecord approve = Audit("auto-approve-rule", "host.approve", host.id, AuditDecision::kAllow, {},
                                {{"host_group", host.host_group}});
    AR_RETURN_IF_ERROR(store_->ApproveHost(host.id, "auto-approve-rule", &approve));
    result.status = store::HostStatus::kApproved;
  }
  return result;
}

Result<store::Nonce> VerifierCore::Challenge(std::string_view host_id, std::string_view purpose) {
  if (purpose != "attest" && purpose != "certify" && purpose != "report") {
    return Problem(StatusCode::kInvalidArgument, problem::kInvalidInput, "purpose must be attest, certify or report");
  }
  auto host = store_->GetHost(host_id);
  if (!host.ok()) return Problem(StatusCode::kNotFound, problem::kHostUnknown, "no such host");
  if (host->status != store::HostStatus::kApproved) {
    return Problem(StatusCode::kPermissionDenied, problem::kHostNotApproved, "host is not approved");
  }
  const int64_t now = clock_.NowUnixSeconds();
  PurgeExpiredOccasionally(now);
  // Counted in the store, so every replica on the database shares the limit.
  AR_ASSIGN_OR_RETURN(store::WindowCount recent, store_->CountHostChallengesSince(host_id, now - kRateWindowSeconds));
  if (recent.count >= config_.challenge_rate_per_minute) {
    AuditBestEffort(Audit(std::string(host_id), "challenge", std::string(host_id), AuditDecision::kDeny,
                          {std::string(problem::kRateLimited)},
                          {{"purpose", std::string(purpose)}, {"limit_per_minute", config_.challenge_rate_per_minute}}));
    return RateLimitedError(problem::kRateLimited,
                            "more than " + std::to_string(config_.challenge_rate_per_minute) +
                                " challenges per minute for this host",
                            recent.oldest + kRateWindowSeconds - now);
  }
  AR_ASSIGN_OR_RETURN(std::string value, common::RandomToken(32));
  store::Nonce nonce;
  nonce.value = value;
  nonce.purpose = std::string(purpose);
  nonce.bound_data = common::ToBytes(host_id);
  nonce.issued_at = now;
  nonce.expires_at = now + config_.nonce_ttl_seconds;
  AR_RETURN_IF_ERROR(store_->CreateNonce(nonce));
  return nonce;
}

void VerifierCore::PurgeExpiredOccasionally(int64_t now) {
  // At most once a minute per process; whichever thread wins the exchange
  // purges. Nonces stay until they have also left the rate window, since
  // the challenge limit counts them.
  int64_t last = last_purge_.load();
  if (now - last < kRateWindowSeconds || !last_purge_.compare_exchange_strong(last, now)) return;
  store_->PurgeExpiredNonces(std::min(now, now - kRateWindowSeconds + config_.nonce_ttl_seconds)).status().IgnoreError();
  store_->PurgeExpiredProofJtis(now).status().IgnoreError();
}

// ---------------------------------------------------------------- agent keys

Result<store::AgentKey> VerifierCore::RegisterAgentKey(std::string_view host_id, std::string_view agent_id,
                                                       std::string_view nonce, ByteView key_public,
                                                       ByteView certify_attest, ByteView certify_signature) {
  const int64_t now = clock_.NowUnixSeconds();
  auto bound = store_->ConsumeNonce(nonce, "certify", now);
  if (!bound.ok() || common::ToString(*bound) != host_id) {
    return Problem(StatusCode::kUnauthenticated, problem::kNonceInvalid, "unknown, expired, used or foreign nonce");
  }
  auto host = store_->GetHost(host_id);
  if (!host.ok() || host->status != store::HostStatus::kApproved) {
    return Problem(StatusCode::kPermissionDenied, problem::kHostNotApproved, "host is not approved");
  }
  auto agent = store_->GetAgent(agent_id);
  if (!agent.ok()) return Problem(StatusCode::kNotFound, problem::kAgentUnknown, "no such agent");
  bool placed = agent->host_id == host->id || (!agent->host_group.empty() && agent->host_group == host->host_group);
  if (!placed) return Problem(StatusCode::kPermissionDenied, problem::kForbidden, "agent is not registered on this host");
  auto ak = TpmPublic::Parse(host->ak_public);
  auto key = TpmPublic::Parse(key_public);
  if (!ak.ok() || !key.ok()) return Problem(StatusCode::kInvalidArgument, problem::kEvidenceInvalid, "bad public area");
  auto nonce_bytes = common::AsBytes(nonce);
  auto certified = VerifyCertification(*ak, certify_attest, certify_signature, CertifyQualifyingData(nonce_bytes), *key);
  if (!certified.ok()) {
    AuditBestEffort(Audit(std::string(host_id), "agent_key.register", std::string(agent_id), AuditDecision::kDeny,
                          {std::string(problem::kKeyNotCertified)}, {{"detail", certified.status().message()}}));
    return Problem(certified.status().code(), problem::kKeyNotCertified, certified.status().message());
  }
  AR_ASSIGN_OR_RETURN(common::EvpPkeyPtr pkey, key->ToOpenSslKey());
  AR_ASSIGN_OR_RETURN(common::Jwk jwk, common::Jwk::FromPublicKey(pkey.get()));
  store::AgentKey record;
  record.thumbprint = jwk.Thumbprint();
  record.agent_id = std::string(agent_id);
  record.host_id = std::string(host_id);
  record.public_jwk = jwk.ToJson();
  record.tpm_public.assign(key_public.begin(), key_public.end());
  AuditRecord audit = Audit(std::string(host_id), "agent_key.register", std::string(agent_id), AuditDecision::kAllow,
                            {}, {{"jkt", record.thumbprint}});
  Status added = store_->AddAgentKey(record, &audit);
  if (!added.ok() && added.code() != StatusCode::kAlreadyExists) return added;
  return record;
}

// ---------------------------------------------------------------- appraisal

Result<AttestOutcome> VerifierCore::Attest(const AttestRequest& r) {
  const int64_t now = clock_.NowUnixSeconds();
  // The nonce is checked here (a read) and consumed at the end in the same
  // transaction as the verdict's audit record: one durable commit. A refusal
  // after the check consumes it with the refusal's record.
  bool nonce_checked = false;
  auto fail = [&](StatusCode code, std::string_view type, const std::string& detail) -> Status {
    AuditRecord record = Audit(r.host_id.empty() ? "unknown" : r.host_id, "attest",
                               r.agent_id.empty() ? "unknown" : r.agent_id, AuditDecision::kDeny,
                               {std::string(type)}, {{"detail", detail}});
    if (!nonce_checked || !store_->ConsumeNonceAudited(r.nonce, "attest", now, record).ok()) AuditBestEffort(record);
    return Problem(code, type, detail);
  };
  auto bound = store_->PeekNonce(r.nonce, "attest", now);
  if (!bound.ok() || common::ToString(*bound) != r.host_id) {
    return fail(StatusCode::kUnauthenticated, problem::kNonceInvalid, "unknown, expired, used or foreign nonce");
  }
  nonce_checked = true;
  auto host = store_->GetHost(r.host_id);
  if (!host.ok()) return fail(StatusCode::kNotFound, problem::kHostUnknown, "no such host");
  if (host->status != store::HostStatus::kApproved) {
    return fail(StatusCode::kPermissionDenied, problem::kHostNotApproved, "host is not approved");
  }
  auto parsed_key = ParseTpmPublicCached(r.agent_key_public);
  if (!parsed_key.ok()) {
    return fail(StatusCode::kInvalidArgument, problem::kEvidenceInvalid, parsed_key.status().message());
  }
  const TpmPublic* key = &(*parsed_key)->key;
  AR_ASSIGN_OR_RETURN(const std::string jkt, ThumbprintOf(**parsed_key));
  auto registered = store_->GetAgentKey(jkt);
  if (!registered.ok() || registered->agent_id != r.agent_id || registered->host_id != r.host_id) {
    return fail(StatusCode::kPermissionDenied, problem::kKeyNotCertified, "agent key not certified for this agent and host");
  }
  auto log = ParseLog(r.measurement_log);
  if (!log.ok() || log->empty()) return fail(StatusCode::kInvalidArgument, problem::kEvidenceInvalid, "bad measurement log");
  // The agent's current measurement is its latest entry in the log (a newer
  // one supersedes older ones); the quote's qualifying data must name it.
  // Renewals of an unchanged, still-running agent reuse that entry, so the
  // log grows per process start and per change, not per token.
  auto latest = std::find_if(log->rbegin(), log->rend(),
                             [&](const MeasurementEvent& e) { return e.agent_id == r.agent_id; });
  if (latest == log->rend()) {
    return fail(StatusCode::kInvalidArgument, problem::kEvidenceInvalid, "the measurement log has no entry for this agent");
  }
  const MeasurementEvent& event = *latest;
  PcrValues pcrs;
  for (const auto& [index, value] : r.pcr_values) pcrs[{tpm_alg::kSha256, index}] = value;
  auto ak = ParseTpmPublicCached(host->ak_public);
  if (!ak.ok()) return common::InternalError("stored AK unreadable");
  Bytes expected = QualifyingData(common::AsBytes(r.nonce), key->name(), EventDigest(event));
  auto quote = VerifyQuote((*ak)->key, r.quote_attest, r.quote_signature, expected, pcrs);
  if (!quote.ok()) return fail(quote.status().code(), problem::kEvidenceInvalid, quote.status().message());

  // The quote is genuine and fresh; from here on the verdict goes into the EAR.
  AttestOutcome out;
  TrustVector& tv = out.result.trust;
  tv.instance_identity = 2;  // EK chain + activated AK (enrollment), quote by that AK
  tv.hardware = 2;           // the key is certified TPM-resident
  tv.storage_opaque = 2;     // non-exportable
  if (!SelectionCovers(quote->selection, tpm_alg::kSha256, config_.measurement_pcr)) {
    tv.executables = 96;
    out.reasons.push_back("measurement_pcr_not_quoted");
  } else if (pcrs[{tpm_alg::kSha256, config_.measurement_pcr}] != ReplayLog(*log)) {
    tv.executables = 96;
    out.reasons.push_back("measurement_log_does_not_replay");
  }
  tv.configuration = 2;
  if (auto refs = config_.pcr_references.find(host->host_group); refs != config_.pcr_references.end()) {
    for (const auto& [index, value] : refs->second) {
      auto it = pcrs.find({tpm_alg::kSha256, index});
      if (!SelectionCovers(quote->selection, tpm_alg::kSha256, index) || it == pcrs.end() || it->second != value) {
        tv.configuration = 96;
        out.reasons.push_back("pcr_" + std::to_string(index) + "_differs_from_reference");
      }
    }
  }
  auto manifest = store_->LatestApprovedManifest(r.agent_id);
  if (!manifest.ok()) {
    if (tv.executables == 0) tv.executables = 32;
    out.reasons.push_back("no_approved_manifest");
  } else {
    out.result.manifest_version = static_cast<int>(manifest->version);
    auto digests = ParseManifestDigests(manifest->content);
    Status match = digests.ok() ? MatchManifest(event, *digests) : digests.status();
    if (!match.ok()) {
      tv.executables = 96;
      out.reasons.push_back("measurement_not_in_approved_manifest");
    } else if (tv.executables == 0) {
      tv.executables = 2;
    }
  }
  out.result.issuer = config_.issuer;
  out.result.verifier_build = config_.build;
  out.result.iat = now;
  out.result.exp = now + config_.ear_ttl_seconds;
  out.result.nonce = common::ToBytes(r.nonce);
  out.result.policy_id = "agentroot/default/v1";
  out.result.agent_id = r.agent_id;
  out.result.host_id = r.host_id;
  out.result.jkt = jkt;
  out.result.status = DeriveStatus(tv);
  AR_ASSIGN_OR_RETURN(out.ear, SignEar(out.result, *issuer_keys()->signer));
  // The EAR is handed out only once the nonce's consumption and the verdict's
  // audit record are durable (one transaction).
  nonce_checked = false;
  auto consumed = store_->ConsumeNonceAudited(
      r.nonce, "attest", now,
      Audit(r.host_id, "attest", r.agent_id,
            out.result.status == EarStatus::kAffirming ? AuditDecision::kAllow : AuditDecision::kDeny, out.reasons,
            {{"ear_status", std::string(EarStatusName(out.result.status))},
             {"jkt", jkt},
             {"reset_count", quote->attest.clock_info.reset_count},
             {"restart_count", quote->attest.clock_info.restart_count}}));
  if (consumed.status().code() == StatusCode::kNotFound ||
      consumed.status().code() == StatusCode::kFailedPrecondition) {
    return fail(StatusCode::kUnauthenticated, problem::kNonceInvalid, "unknown, expired, used or foreign nonce");
  }
  AR_RETURN_IF_ERROR(consumed.status());
  return out;
}

// ---------------------------------------------------------------- tokens

Result<int64_t> VerifierCore::TokenRetryAfter(const std::string& agent_id, int64_t now) {
  // Counted in the store: every replica on the database sees the same tokens.
  AR_ASSIGN_OR_RETURN(store::WindowCount issued, store_->CountAgentTokensSince(agent_id, now - kRateWindowSeconds));
  if (issued.count < config_.token_rate_per_minute) return int64_t{0};
  return std::max<int64_t>(1, issued.oldest + kRateWindowSeconds - now);
}

Result<IssuedToken> VerifierCore::Token(const TokenExchange& request) {
  const int64_t now = clock_.NowUnixSeconds();
  const std::shared_ptr<const IssuerKeys> issuer = issuer_keys();  // one key set for the whole request
  StoreReplayCache replay(*store_);
  DpopRequirements req;
  req.method = "POST";
  req.url = config_.token_endpoint;
  req.clock = &clock_;
  // Parsed once, unverified: the nonce is read from this parse and the same
  // parse is then verified.
  auto parsed = ParseDpopProof(request.dpop_proof, req);
  if (config_.require_dpop_nonce) {
    // The nonce the proof claims; verified with the proof's signature below,
    // consumed only after that, so a forged proof cannot burn a nonce.
    std::optional<std::string> claimed;
    if (parsed.ok()) {
      auto it = parsed->payload_json.find("nonce");
      if (it != parsed->payload_json.end() && it->is_string()) claimed = it->get<std::string>();
    }
    if (!claimed) {
      return OAuthError(StatusCode::kUnauthenticated, oauth_error::kUseDpopNonce, "a server nonce is required");
    }
    req.nonce = *claimed;
  }
  auto proof = parsed.ok() ? VerifyDpopProof(std::move(parsed).value(), req, &replay)
                           : Result<VerifiedDpopProof>(parsed.status());
  if (proof.ok() && config_.require_dpop_nonce && !store_->ConsumeNonce(*req.nonce, "dpop", now).ok()) {
    return OAuthError(StatusCode::kUnauthenticated, oauth_error::kUseDpopNonce, "the nonce is unknown, used or expired");
  }
  if (!proof.ok()) {
    AuditBestEffort(Audit("unknown", "token.issue", "unknown", AuditDecision::kDeny,
                          {std::string(oauth_error::kInvalidDpopProof)}, {{"detail", proof.status().message()}}));
    return proof.status();
  }
  auto ear = VerifyEar(request.subject_token, issuer->keys, config_.issuer, clock_);
  if (!ear.ok()) {
    replay.AuditRefusal(Audit(proof->jkt, "token.issue", "unknown", AuditDecision::kDeny, {"invalid_attestation_result"},
                          {{"detail", ear.status().message()}}));
    return OAuthError(StatusCode::kUnauthenticated, oauth_error::kInvalidGrant,
                      "the attestation result is not valid: " + ear.status().message());
  }
  std::optional<HostView> host;
  if (auto h = store_->GetHost(ear->host_id); h.ok()) {
    host = HostView{h->id, h->host_group, h->status == store::HostStatus::kApproved};
  }
  std::optional<AgentView> agent;
  std::vector<JitGrantView> grants;
  const std::vector<std::string> requested = ParseScope(request.scope);
  if (auto a = store_->GetAgent(ear->agent_id); a.ok()) {
    // Just-in-time grants are read only when a requested scope needs one.
    const bool beyond = std::any_of(requested.begin(), requested.end(), [&](const std::string& scope) {
      return std::find(a->allowed_scopes.begin(), a->allowed_scopes.end(), scope) == a->allowed_scopes.end();
    });
    if (beyond) {
      AR_ASSIGN_OR_RETURN(std::vector<store::JitGrant> active, store_->ActiveJitGrants(a->id, now));
      for (const store::JitGrant& g : active) {
        for (const std::string& scope : g.scopes) grants.push_back(JitGrantView{scope, g.expires_at, g.id});
      }
    }
    AgentView v;
    v.id = a->id;
    v.active = a->status == store::AgentStatus::kActive;
    v.host_id = a->host_id;
    v.host_group = a->host_group;
    v.registration_expires_at = a->expires_at;
    v.allowed_scopes = a->allowed_scopes;
    v.allowed_audiences = a->allowed_audiences;
    v.max_token_ttl = a->max_token_ttl_seconds;
    for (const std::string& owner : a->owners) {
      auto op = store_->GetOperator(owner);
      if (op.ok() && op->status == store::OperatorStatus::kActive) v.active_owners.push_back(owner);
    }
    agent = std::move(v);
  }
  std::optional<ManifestView> manifest;
  if (auto m = store_->GetManifest(ear->agent_id, ear->manifest_version); m.ok()) {
    manifest = ManifestView{static_cast<int>(m->version), m->status == store::ManifestStatus::kApproved, m->reviewer_id};
  }
  // Session proof mode: the binding proves the proof key speaks for the
  // attested TPM key, so the policy checks the TPM key; the token is bound
  // to the session key.
  std::optional<SessionBinding> session;
  if (request.session_binding) {
    AR_ASSIGN_OR_RETURN(session, CheckSessionBinding(*request.session_binding, *ear, proof->jkt));
  }
  const std::string& attested_jkt = session ? session->tpm_jkt : proof->jkt;
  std::optional<KeyBindingView> key;
  if (auto k = store_->GetAgentKey(ear->jkt); k.ok()) key = KeyBindingView{k->agent_id, k->host_id, k->thumbprint};
  TokenRequestView view{requested, request.audience, request.requested_ttl, attested_jkt};
  AR_ASSIGN_OR_RETURN(int64_t retry_after, TokenRetryAfter(ear->agent_id, now));
  Decision decision = DecideToken(host, agent, manifest, key, *ear, view, grants, now, retry_after > 0);
  if (!decision.allow) {
    replay.AuditRefusal(Audit(ear->agent_id, "token.issue", ear->agent_id, AuditDecision::kDeny, decision.reasons,
                          {{"host", ear->host_id}, {"jkt", proof->jkt}, {"scope", request.scope},
                           {"audience", request.audience}}));
    std::string_view error = oauth_error::kInvalidGrant;
    for (const std::string& reason : decision.reasons) {
      if (reason == reason::kScopeNotAllowed || reason == reason::kNoScope) error = oauth_error::kInvalidScope;
      if (reason == reason::kAudienceNotAllowed) error = oauth_error::kInvalidTarget;
      if (reason == reason::kProofKeyMismatch) error = oauth_error::kInvalidDpopProof;
    }
    if (decision.reasons == std::vector<std::string>{std::string(reason::kRateLimited)}) {
      // Only the rate stands in the way: 429 with Retry-After, the OAuth
      // error as before (invalid_grant, described as rate_limited).
      return RateLimitedError(error, FormatScope(decision.reasons), retry_after);
    }
    return OAuthError(StatusCode::kPermissionDenied, error, FormatScope(decision.reasons));
  }
  if (session) decision.ttl = std::min(decision.ttl, session->expires_at - now);  // > 0: checked with the binding
  AR_ASSIGN_OR_RETURN(std::string jti, common::RandomToken(16));
  Json claims = {{"iss", config_.issuer}, {"sub", ear->agent_id}, {"client_id", ear->agent_id},
                 {"aud", request.audience}, {"scope", FormatScope(decision.scopes)}, {"jti", jti},
                 {"iat", now}, {"exp", now + decision.ttl}, {"cnf", {{"jkt", proof->jkt}}},
                 {"agentroot.host", ear->host_id}};
  // Every use of an elevation is attributable: the token and its audit
  // record name the grants.
  if (!decision.jit_grant_ids.empty()) claims["agentroot.jit"] = decision.jit_grant_ids;
  if (session) {
    claims["agentroot.tpm_jkt"] = session->tpm_jkt;
    claims["agentroot.proof_mode"] = "session";
  }
  AR_ASSIGN_OR_RETURN(std::string token, common::SignJwt(claims, *issuer->signer, "at+jwt"));
  store::TokenRecord record;
  record.jti = jti;
  record.request_id = proof->jkt + ":" + proof->jti;  // one token per proof
  record.agent_id = ear->agent_id;
  record.host_id = ear->host_id;
  record.cnf_jkt = proof->jkt;
  record.scope = FormatScope(decision.scopes);
  record.audience = request.audience;
  record.issued_at = now;
  record.expires_at = now + decision.ttl;
  AuditRecord audit = Audit(ear->agent_id, "token.issue", ear->agent_id, AuditDecision::kAllow, {},
                            {{"jti", jti}, {"host", ear->host_id}, {"jkt", proof->jkt}, {"scope", record.scope},
                             {"audience", record.audience}, {"ttl", decision.ttl},
                             {"jit_scopes", decision.jit_scopes}, {"jit_grants", decision.jit_grant_ids},
                             {"proof_mode", session ? "session" : "tpm"}});
  // Durable before it is handed out (THREATS.md #14). The rate limit is
  // checked again in the same transaction: replicas racing past the count
  // above still cannot exceed it together.
  // The proof jti is recorded in the same transaction (one commit).
  Result<store::IssueTokenResult> stored =
      replay.pending() == nullptr
          ? Result<store::IssueTokenResult>(common::InternalError("DPoP proof not checked against the replay cache"))
          : store_->IssueTokenForProof(record, audit, now - kRateWindowSeconds,
                                                 config_.token_rate_per_minute, *replay.pending());
  if (stored.ok()) replay.Spent();
  if (stored.status().code() == StatusCode::kAlreadyExists) {
    // A replay of this proof won the race since the check above.
    AuditBestEffort(Audit(proof->jkt, "token.issue", "unknown", AuditDecision::kDeny,
                          {std::string(oauth_error::kInvalidDpopProof)},
                          {{"detail", "proof replayed (jti already used)"}}));
    replay.Spent();  // recorded by the winner
    return OAuthError(StatusCode::kUnauthenticated, oauth_error::kInvalidDpopProof,
                      "proof replayed (jti already used)");
  }
  if (stored.status().code() == StatusCode::kResourceExhausted) {
    replay.AuditRefusal(Audit(ear->agent_id, "token.issue", ear->agent_id, AuditDecision::kDeny,
                          {std::string(reason::kRateLimited)}, {{"host", ear->host_id}, {"jkt", proof->jkt}}));
    auto again = TokenRetryAfter(ear->agent_id, now);
    return RateLimitedError(oauth_error::kInvalidGrant, reason::kRateLimited, again.ok() ? *again : kRateWindowSeconds);
  }
  AR_ASSIGN_OR_RETURN(store::IssueTokenResult issued, std::move(stored));
  if (!issued.created) return common::AbortedError("token request already answered");
  return IssuedToken{std::move(token), jti, decision.ttl, record.scope};
}

Result<std::string> VerifierCore::IssueDpopNonce() {
  AR_ASSIGN_OR_RETURN(std::string value, common::RandomToken(24));
  store::Nonce nonce;
  nonce.value = value;
  nonce.purpose = "dpop";
  nonce.expires_at = clock_.NowUnixSeconds() + config_.dpop_nonce_ttl_seconds;
  AR_RETURN_IF_ERROR(store_->CreateNonce(nonce));
  return value;
}

Json VerifierCore::Introspect(std::string_view token) {
  common::JwtValidationOptions options;
  options.issuer = config_.issuer;
  options.typ = "at+jwt";
  options.clock = &clock_;
  auto verified = common::VerifyJwt(token, issuer_keys()->keys, options);
  if (!verified.ok()) return Json{{"active", false}};
  const Json& c = verified->claims;
  if (!c.contains("jti") || !c["jti"].is_string()) return Json{{"active", false}};
  auto revoked = store_->IsTokenRevoked(c["jti"].get<std::string>());
  if (!revoked.ok() || *revoked) return Json{{"active", false}};
  Json out = {{"active", true}, {"token_type", "DPoP"}};
  for (const char* k : {"scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "cnf"}) {
    if (c.contains(k)) out[k] = c[k];
  }
  return out;
}

Status VerifierCore::Revoke(std::string_view token, std::string_view actor) {
  common::JwtValidationOptions options;
  options.issuer = config_.issuer;
  options.typ = "at+jwt";
  options.leeway = std::chrono::seconds(300);
  options.clock = &clock_;
  auto verified = common::VerifyJwt(token, issuer_keys()->keys, options);
  // RFC 7009: an invalid or unknown token is not an error for the caller.
  if (!verified.ok() || !verified->claims.contains("jti")) return Status::Ok();
  std::string jti = verified->claims["jti"].get<std::string>();
  AuditRecord audit = Audit(std::string(actor), "token.revoke", jti, AuditDecision::kInfo);
  Status revoked = store_->RevokeToken(jti, &audit);
  if (!revoked.ok() && revoked.code() != StatusCode::kNotFound) return revoked;
  return Status::Ok();
}

}  // namespace agentroot::attestation
