#include "security/tpm/messages.hpp"

#include <set>

#include <nlohmann/json.hpp>

#include "security/crypto.hpp"
#include "security/tpm/attestation.hpp"

namespace edge::security::tpm {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxBinary = 8192;  // bytes: far above any TPM2B_PUBLIC, quote or cert
constexpr std::size_t kMaxText = 128;

std::unexpected<Error> bad(std::string what) {
    return fail(TpmErrc::kMalformed, "attestation message: " + std::move(what));
}

std::string b64(const Bytes& bytes) {
    return base64UrlEncode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

/// The document as an object with exactly the allowed keys.
Result<json> object(std::string_view text, const std::set<std::string>& allowed) {
    if (text.size() > (kMaxLogEntries + 16) * 512) return bad("too large");
    json doc = json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
    for (const auto& item : doc.items()) {
        if (!allowed.contains(item.key())) return bad("unknown field \"" + item.key() + "\"");
    }
    return doc;
}

Result<Bytes> binary(const json& doc, const char* name, bool required = true) {
    const auto it = doc.find(name);
    if (it == doc.end()) {
        if (required) return bad(std::string("missing field \"") + name + "\"");
        return Bytes{};
    }
    if (!it->is_string()) return bad(std::string("field \"") + name + "\" must be a base64url string");
    const auto& text = it->get_ref<const std::string&>();
    if (text.size() > kMaxBinary * 4 / 3 + 4) return bad(std::string("field \"") + name + "\" is too long");
    auto decoded = base64UrlDecode(text);
    if (!decoded) return bad(std::string("field \"") + name + "\" is not base64url");
    return Bytes(decoded->begin(), decoded->end());
}

Result<std::string> text(const json& doc, const char* name) {
    const auto it = doc.find(name);
    if (it == doc.end()) return bad(std::string("missing field \"") + name + "\"");
    if (!it->is_string() || it->get_ref<const std::string&>().size() > kMaxText) {
        return bad(std::string("field \"") + name + "\" must be a string of at most 128 characters");
    }
    return it->get<std::string>();
}

Result<int> pcrIndex(const json& v) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 23) {
        return bad("a PCR index must be an integer from 0 to 23");
    }
    return static_cast<int>(v.get<std::int64_t>());
}

json logJson(const MeasurementLog& log) {
    json entries = json::array();
    for (const auto& m : log.entries) {
        entries.push_back({{"kind", m.kind}, {"name", m.name}, {"version", m.version}, {"digest", digestHex(m.digest)}});
    }
    return {{"pcr", log.pcr}, {"baseline", digestHex(log.baseline)}, {"entries", std::move(entries)}};
}

Result<MeasurementLog> logFrom(const json& v) {
    if (!v.is_object()) return bad("field \"log\" must be an object");
    for (const auto& item : v.items()) {
        if (item.key() != "pcr" && item.key() != "baseline" && item.key() != "entries") {
            return bad("unknown field \"log." + item.key() + "\"");
        }
    }
    MeasurementLog log;
    if (!v.contains("pcr")) return bad("missing field \"log.pcr\"");
    auto pcr = pcrIndex(v["pcr"]);
    if (!pcr) return fail(pcr.error());
    log.pcr = *pcr;
    if (!v.contains("baseline") || !v["baseline"].is_string()) return bad("field \"log.baseline\" must be hex");
    auto baseline = digestFromHex(v["baseline"].get_ref<const std::string&>());
    if (!baseline) return fail(baseline.error());
    log.baseline = *baseline;
    if (!v.contains("entries") || !v["entries"].is_array()) return bad("field \"log.entries\" must be an array");
    if (v["entries"].size() > kMaxLogEntries) return bad("field \"log.entries\" has too many entries");
    for (const auto& e : v["entries"]) {
        if (!e.is_object() || e.size() != 4) return bad("a log entry has kind, name, version and digest");
        Measurement m;
        for (auto [key, target] : {std::pair{"kind", &m.kind}, std::pair{"name", &m.name},
                                   std::pair{"version", &m.version}}) {
            auto value = text(e, key);
            if (!value) return fail(value.error());
            *target = std::move(*value);
        }
        if (!e.contains("digest") || !e["digest"].is_string()) return bad("a log entry's digest must be hex");
        auto digest = digestFromHex(e["digest"].get_ref<const std::string&>());
        if (!digest) return fail(digest.error());
        m.digest = *digest;
        log.entries.push_back(std::move(m));
    }
    return log;
}

template <typename Fn>
auto guarded(Fn&& fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const json::exception& e) {
        return bad(e.what());
    }
}

}  // namespace

Sha256Digest MeasurementLog::replay() const {
    std::vector<Sha256Digest> digests;
    digests.reserve(entries.size());
    for (const auto& m : entries) digests.push_back(m.digest);
    return replayPcr(digests, baseline);
}

std::string bytesHex(const Bytes& bytes) {
    return toHex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string digestHex(const Sha256Digest& d) {
    return toHex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

Result<Sha256Digest> digestFromHex(std::string_view hex) {
    if (!isSha256Hex(hex)) return bad("a digest must be 64 lowercase hex characters");
    Sha256Digest out{};
    for (std::size_t i = 0; i < 32; ++i) {
        auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
        out[i] = static_cast<std::uint8_t>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
    }
    return out;
}

std::string toJson(const EnrollMessage& m) {
    return json{{"ek_public", b64(m.ek_public)},
                {"ek_certificate", b64(m.ek_certificate)},
                {"ak_public", b64(m.ak_public)},
                {"ak_name", b64(m.ak_name)}}
        .dump();
}

std::string toJson(const CredentialMessage& m) {
    return json{{"credential_blob", b64(m.credential_blob)}, {"encrypted_secret", b64(m.encrypted_secret)}}.dump();
}

std::string toJson(const ActivateMessage& m) { return json{{"secret", b64(m.secret)}}.dump(); }

std::string toJson(const ChallengeMessage& m) { return json{{"nonce", b64(m.nonce)}, {"pcrs", m.pcrs}}.dump(); }

std::string toJson(const QuoteMessage& m) {
    if (!m.error.empty()) return json{{"nonce", b64(m.nonce)}, {"error", m.error}}.dump();
    json pcrs = json::object();
    for (const auto& [index, value] : m.quote.pcrs) pcrs[std::to_string(index)] = digestHex(value);
    return json{{"nonce", b64(m.nonce)},
                {"attest", b64(m.quote.attest)},
                {"signature", b64(m.quote.signature)},
                {"pcrs", std::move(pcrs)},
                {"log", logJson(m.log)}}
        .dump();
}

std::string toJson(const MeasurementLog& log) { return logJson(log).dump(); }

Result<EnrollMessage> parseEnroll(std::string_view json_text) {
    return guarded([&]() -> Result<EnrollMessage> {
        auto doc = object(json_text, {"ek_public", "ek_certificate", "ak_public", "ak_name"});
        if (!doc) return fail(doc.error());
        EnrollMessage m;
        for (auto [name, target, required] : {std::tuple{"ek_public", &m.ek_public, true},
                                              std::tuple{"ek_certificate", &m.ek_certificate, false},
                                              std::tuple{"ak_public", &m.ak_public, true},
                                              std::tuple{"ak_name", &m.ak_name, true}}) {
            auto value = binary(*doc, name, required);
            if (!value) return fail(value.error());
            *target = std::move(*value);
        }
        return m;
    });
}

Result<CredentialMessage> parseCredential(std::string_view json_text) {
    return guarded([&]() -> Result<CredentialMessage> {
        auto doc = object(json_text, {"credential_blob", "encrypted_secret"});
        if (!doc) return fail(doc.error());
        CredentialMessage m;
        auto blob = binary(*doc, "credential_blob");
        if (!blob) return fail(blob.error());
        auto secret = binary(*doc, "encrypted_secret");
        if (!secret) return fail(secret.error());
        m.credential_blob = std::move(*blob);
        m.encrypted_secret = std::move(*secret);
        return m;
    });
}

Result<ActivateMessage> parseActivate(std::string_view json_text) {
    return guarded([&]() -> Result<ActivateMessage> {
        auto doc = object(json_text, {"secret"});
        if (!doc) return fail(doc.error());
        auto secret = binary(*doc, "secret");
        if (!secret) return fail(secret.error());
        return ActivateMessage{std::move(*secret)};
    });
}

Result<ChallengeMessage> parseChallenge(std::string_view json_text) {
    return guarded([&]() -> Result<ChallengeMessage> {
        auto doc = object(json_text, {"nonce", "pcrs"});
        if (!doc) return fail(doc.error());
        ChallengeMessage m;
        auto nonce = binary(*doc, "nonce");
        if (!nonce) return fail(nonce.error());
        if (nonce->empty() || nonce->size() > 64) return bad("a nonce has 1 to 64 bytes");
        m.nonce = std::move(*nonce);
        if (!doc->contains("pcrs") || !(*doc)["pcrs"].is_array() || (*doc)["pcrs"].empty() ||
            (*doc)["pcrs"].size() > 24) {
            return bad("field \"pcrs\" must be a list of 1 to 24 PCR indexes");
        }
        for (const auto& v : (*doc)["pcrs"]) {
            auto index = pcrIndex(v);
            if (!index) return fail(index.error());
            m.pcrs.push_back(*index);
        }
        return m;
    });
}

Result<QuoteMessage> parseQuote(std::string_view json_text) {
    return guarded([&]() -> Result<QuoteMessage> {
        auto doc = object(json_text, {"nonce", "error", "attest", "signature", "pcrs", "log"});
        if (!doc) return fail(doc.error());
        QuoteMessage m;
        auto nonce = binary(*doc, "nonce");
        if (!nonce) return fail(nonce.error());
        m.nonce = std::move(*nonce);
        if (doc->contains("error")) {
            auto error = text(*doc, "error");
            if (!error) {
                // Errors are long TSS messages at times: keep a bounded prefix.
                if (!(*doc)["error"].is_string()) return fail(error.error());
                m.error = (*doc)["error"].get<std::string>().substr(0, 1024);
            } else {
                m.error = std::move(*error);
            }
            if (m.error.empty()) m.error = "unspecified TPM error";
            return m;
        }
        auto attest = binary(*doc, "attest");
        if (!attest) return fail(attest.error());
        auto signature = binary(*doc, "signature");
        if (!signature) return fail(signature.error());
        m.quote.attest = std::move(*attest);
        m.quote.signature = std::move(*signature);
        if (!doc->contains("pcrs") || !(*doc)["pcrs"].is_object() || (*doc)["pcrs"].size() > 24) {
            return bad("field \"pcrs\" must map PCR indexes to hex values");
        }
        for (const auto& [key, value] : (*doc)["pcrs"].items()) {
            int index = -1;
            if (key.empty() || key.size() > 2 || key.find_first_not_of("0123456789") != std::string::npos) {
                return bad("PCR index \"" + key.substr(0, 8) + "\" is not a number");
            }
            index = std::stoi(key);
            if (index > 23) return bad("PCR index out of range");
            if (!value.is_string()) return bad("a PCR value must be hex");
            auto digest = digestFromHex(value.get_ref<const std::string&>());
            if (!digest) return fail(digest.error());
            m.quote.pcrs[index] = *digest;
        }
        if (!doc->contains("log")) return bad("missing field \"log\"");
        auto log = logFrom((*doc)["log"]);
        if (!log) return fail(log.error());
        m.log = std::move(*log);
        return m;
    });
}

Result<MeasurementLog> parseLog(std::string_view json_text) {
    return guarded([&]() -> Result<MeasurementLog> {
        json doc = json::parse(json_text.begin(), json_text.end(), nullptr, false);
        if (doc.is_discarded()) return bad("log: not JSON");
        return logFrom(doc);
    });
}

}  // namespace edge::security::tpm
