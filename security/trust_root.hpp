#pragma once
// The trust root a device is provisioned with: which keys may sign bundles ("targets" role)
// and how many of them must agree, plus a "root" role reserved for rotating the trust root.
//
// {"schema":1,"version":1,
//  "keys":{"<kid>":{"alg":"EdDSA","public_pem":"-----BEGIN PUBLIC KEY-----…"}},
//  "roles":{"root":{"threshold":1,"keys":["<kid>"]},"targets":{"threshold":1,"keys":["<kid>"]}}}
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "security/crypto.hpp"
#include "shared/core/error.hpp"

namespace edge::security {

inline constexpr int kTrustRootSchema = 1;

struct Role {
    std::uint32_t threshold = 1;
    std::vector<std::string> key_ids;
};

struct TrustRoot {
    std::uint64_t version = 1;
    std::map<std::string, PublicKey> keys;  // keyId -> key
    Role root;
    Role targets;

    /// kTrustRoot with a clear message on any problem: bad JSON or field type, unknown schema,
    /// bad PEM, a key whose id or alg does not match its PEM, a role naming an unknown key or
    /// the same key twice, threshold 0 or above the number of keys in the role.
    [[nodiscard]] static Result<TrustRoot> fromJson(std::string_view text);
    [[nodiscard]] static Result<TrustRoot> load(const std::filesystem::path& path);
    /// Pretty JSON (indent 2) that fromJson accepts.
    [[nodiscard]] std::string toJson() const;
    /// Version 1; root and targets roles both hold targets_keys (deduplicated) with threshold.
    /// The caller passes 1 <= threshold <= number of distinct keys; otherwise the result does
    /// not survive fromJson.
    [[nodiscard]] static TrustRoot create(const std::vector<PublicKey>& targets_keys,
                                          std::uint32_t threshold);
};

}  // namespace edge::security
