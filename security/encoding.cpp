// Encodings and algorithm names: no crypto library needed.
#include <array>
#include <cstdint>

#include "security/crypto.hpp"

namespace edge::security {

std::string_view jwsAlgName(Algorithm alg) {
    switch (alg) {
        case Algorithm::kEd25519: return "EdDSA";
        case Algorithm::kEs256: return "ES256";
    }
    return "unknown";
}

Result<Algorithm> algorithmFromJws(std::string_view name) {
    if (name == "EdDSA") return Algorithm::kEd25519;
    if (name == "ES256") return Algorithm::kEs256;
    return fail(SecurityErrc::kMalformed, "unsupported JWS algorithm '" + std::string(name) + "'");
}

Result<Algorithm> algorithmFromName(std::string_view name) {
    if (name == "ed25519") return Algorithm::kEd25519;
    if (name == "es256") return Algorithm::kEs256;
    return fail(SecurityErrc::kKey,
                "unknown key algorithm '" + std::string(name) + "' (expected ed25519 or es256)");
}

bool isSha256Hex(std::string_view text) {
    if (text.size() != 64) return false;
    for (const char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

std::string toHex(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out.push_back(kDigits[b >> 4]);
        out.push_back(kDigits[b & 0x0f]);
    }
    return out;
}

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<std::int8_t, 256> makeReverse() {
    std::array<std::int8_t, 256> table{};
    for (auto& v : table) v = -1;
    for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
    return table;
}

constexpr std::array<std::int8_t, 256> kReverse = makeReverse();

}  // namespace

std::string base64UrlEncode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() * 4 + 2) / 3);
    std::size_t i = 0;
    auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
        out.push_back(kAlphabet[v & 63]);
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        const std::uint32_t v = at(i) << 16;
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
    } else if (rest == 2) {
        const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
    }
    return out;
}

Result<std::string> base64UrlDecode(std::string_view text) {
    if (text.size() % 4 == 1) {
        return fail(SecurityErrc::kMalformed, "base64url text has an impossible length");
    }
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const std::int8_t v = kReverse[static_cast<unsigned char>(text[i])];
        if (v < 0) {
            return fail(SecurityErrc::kMalformed,
                        "invalid base64url character at offset " + std::to_string(i));
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
        acc &= (1u << bits) - 1;  // keep only the bits not yet emitted
    }
    // Unused trailing bits must be zero, or two texts would decode to the same bytes.
    if (acc != 0) {
        return fail(SecurityErrc::kMalformed, "base64url text has non-zero trailing bits");
    }
    return out;
}

}  // namespace edge::security
