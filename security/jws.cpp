#include "security/jws.hpp"

#include <nlohmann/json.hpp>

namespace edge::security {

namespace {

using nlohmann::json;

std::string dumpCompact(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<std::string> decodeField(std::string_view b64, std::string_view what) {
    auto decoded = base64UrlDecode(b64);
    if (!decoded) {
        return fail(SecurityErrc::kMalformed,
                    std::string(what) + " is not base64url: " + decoded.error().message());
    }
    return decoded;
}

Result<JwsSignature> parseSignature(const json& entry, std::size_t index) {
    const std::string where = "signature " + std::to_string(index) + ": ";
    if (!entry.is_object()) return fail(SecurityErrc::kMalformed, where + "not an object");
    const auto prot = entry.find("protected");
    if (prot == entry.end() || !prot->is_string()) {
        return fail(SecurityErrc::kMalformed, where + "missing string \"protected\"");
    }
    const auto sig = entry.find("signature");
    if (sig == entry.end() || !sig->is_string()) {
        return fail(SecurityErrc::kMalformed, where + "missing string \"signature\"");
    }
    JwsSignature out;
    out.protected_b64 = prot->get<std::string>();
    auto header_text = decodeField(out.protected_b64, where + "protected header");
    if (!header_text) return fail(std::move(header_text.error()));
    const json header = json::parse(*header_text, nullptr, false);
    if (header.is_discarded() || !header.is_object()) {
        return fail(SecurityErrc::kMalformed, where + "protected header is not a JSON object");
    }
    // We understand no extensions, so any critical one makes the signature unusable (§4.1.11).
    if (header.contains("crit")) {
        return fail(SecurityErrc::kMalformed, where + "unsupported \"crit\" header");
    }
    const auto alg = header.find("alg");
    const auto kid = header.find("kid");
    if (alg == header.end() || !alg->is_string()) {
        return fail(SecurityErrc::kMalformed, where + "protected header lacks string \"alg\"");
    }
    if (kid == header.end() || !kid->is_string()) {
        return fail(SecurityErrc::kMalformed, where + "protected header lacks string \"kid\"");
    }
    out.alg = alg->get<std::string>();
    out.kid = kid->get<std::string>();
    auto raw = decodeField(sig->get<std::string>(), where + "signature");
    if (!raw) return fail(std::move(raw.error()));
    out.signature = std::move(*raw);
    return out;
}

Result<Jws> parseDocument(std::string_view text) {
    const json doc = json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded()) return fail(SecurityErrc::kMalformed, "not JSON");
    if (!doc.is_object()) return fail(SecurityErrc::kMalformed, "not a JSON object");
    const auto payload = doc.find("payload");
    if (payload == doc.end() || !payload->is_string()) {
        return fail(SecurityErrc::kMalformed, "missing string \"payload\"");
    }
    const auto sigs = doc.find("signatures");
    if (sigs == doc.end() || !sigs->is_array()) {
        return fail(SecurityErrc::kMalformed, "missing array \"signatures\"");
    }
    if (sigs->empty()) return fail(SecurityErrc::kMalformed, "no signatures");
    if (sigs->size() > kMaxJwsSignatures) {
        return fail(SecurityErrc::kMalformed,
                    "too many signatures (at most " + std::to_string(kMaxJwsSignatures) + ")");
    }
    Jws out;
    out.payload_b64 = payload->get<std::string>();
    auto decoded = decodeField(out.payload_b64, "payload");
    if (!decoded) return fail(std::move(decoded.error()));
    out.payload = std::move(*decoded);
    out.signatures.reserve(sigs->size());
    for (std::size_t i = 0; i < sigs->size(); ++i) {
        auto sig = parseSignature((*sigs)[i], i);
        if (!sig) return fail(std::move(sig.error()));
        out.signatures.push_back(std::move(*sig));
    }
    return out;
}

}  // namespace

Result<std::string> jwsSign(std::string_view payload, const std::vector<PrivateKey>& keys) {
    if (keys.empty()) return fail(SecurityErrc::kKey, "no signing keys");
    const std::string payload_b64 = base64UrlEncode(payload);
    json sigs = json::array();
    for (const PrivateKey& key : keys) {
        const json header = {{"alg", std::string(jwsAlgName(key.algorithm()))},
                             {"kid", key.publicKey().keyId()}};
        const std::string protected_b64 = base64UrlEncode(dumpCompact(header));
        auto sig = key.sign(protected_b64 + "." + payload_b64);
        if (!sig) return fail(std::move(sig.error()).wrap("sign JWS"));
        sigs.push_back({{"protected", protected_b64}, {"signature", base64UrlEncode(*sig)}});
    }
    return dumpCompact(json{{"payload", payload_b64}, {"signatures", std::move(sigs)}});
}

Result<Jws> jwsParse(std::string_view text) {
    if (text.size() > kMaxJwsBytes) {
        return fail(SecurityErrc::kMalformed,
                    "JWS larger than " + std::to_string(kMaxJwsBytes) + " bytes");
    }
    try {
        return parseDocument(text);
    } catch (const nlohmann::json::exception& e) {
        // Not expected after the type checks above; never let it cross the module boundary.
        return fail(SecurityErrc::kMalformed, std::string("JWS: ") + e.what());
    }
}

}  // namespace edge::security
