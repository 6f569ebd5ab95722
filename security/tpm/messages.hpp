#pragma once
// The attestation messages on MQTT (docs/attestation.md), shared by edged and the control plane.
// JSON; binary fields are base64url without padding; TPM structures stay in the TPM's own
// marshalled form. Topics under <prefix>/dev/<id>/:
//
//   attest/enroll      device -> cp   EnrollMessage     EK and AK public parts, AK name
//   attest/credential  cp -> device   CredentialMessage MakeCredential for that EK and AK name
//   attest/activate    device -> cp   ActivateMessage   the secret ActivateCredential recovered
//   attest/challenge   cp -> device   ChallengeMessage  nonce and PCR selection
//   attest/quote       device -> cp   QuoteMessage      quote, signature, PCR values, measurement log
//   attest/reenroll    cp -> device   (empty object)    an operator accepted the device's state again
//
// Parsers take untrusted bytes (fuzzed: tests/fuzz/attest_message_fuzz.cpp), are strict (unknown
// fields, wrong types, oversized fields are errors) and bounded.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "security/tpm/tpm.hpp"
#include "shared/core/error.hpp"

namespace edge::security::tpm {

/// One measured digest: what was extended into the PCR, in order.
struct Measurement {
    std::string kind;     // "bundle", "firmware", "model"
    std::string name;     // model or firmware name; "" for bundles
    std::string version;  // bundle version, firmware or model version
    Sha256Digest digest{};
    friend bool operator==(const Measurement&, const Measurement&) = default;
};

/// The measurement log of one epoch: the PCR started at baseline (zeros after a TPM reset; the
/// PCR's value when an operator re-enrolled the device otherwise), then each entry was extended.
struct MeasurementLog {
    int pcr = 23;
    Sha256Digest baseline{};
    std::vector<Measurement> entries;
    friend bool operator==(const MeasurementLog&, const MeasurementLog&) = default;

    /// The PCR value the log replays to.
    [[nodiscard]] Sha256Digest replay() const;
};

struct EnrollMessage {
    Bytes ek_public;
    Bytes ek_certificate;
    Bytes ak_public;
    Bytes ak_name;
};

struct CredentialMessage {
    Bytes credential_blob;
    Bytes encrypted_secret;
};

struct ActivateMessage {
    Bytes secret;
};

struct ChallengeMessage {
    Bytes nonce;
    std::vector<int> pcrs;
};

struct QuoteMessage {
    Bytes nonce;
    /// Set when the device could not quote (its TPM failed): then only nonce and error are used.
    std::string error;
    Quote quote;
    MeasurementLog log;
};

inline constexpr std::size_t kMaxLogEntries = 4096;

[[nodiscard]] std::string toJson(const EnrollMessage& m);
[[nodiscard]] std::string toJson(const CredentialMessage& m);
[[nodiscard]] std::string toJson(const ActivateMessage& m);
[[nodiscard]] std::string toJson(const ChallengeMessage& m);
[[nodiscard]] std::string toJson(const QuoteMessage& m);
/// The log alone (stored by edged, shown by the control plane).
[[nodiscard]] std::string toJson(const MeasurementLog& log);

/// kMalformed with the field named on anything else than the documented shape.
[[nodiscard]] Result<EnrollMessage> parseEnroll(std::string_view json);
[[nodiscard]] Result<CredentialMessage> parseCredential(std::string_view json);
[[nodiscard]] Result<ActivateMessage> parseActivate(std::string_view json);
[[nodiscard]] Result<ChallengeMessage> parseChallenge(std::string_view json);
[[nodiscard]] Result<QuoteMessage> parseQuote(std::string_view json);
[[nodiscard]] Result<MeasurementLog> parseLog(std::string_view json);

/// Lowercase hex of bytes (names, keys in logs and reports).
[[nodiscard]] std::string bytesHex(const Bytes& bytes);
/// Lowercase hex of a digest, and back (kMalformed unless 64 lowercase hex characters).
[[nodiscard]] std::string digestHex(const Sha256Digest& d);
[[nodiscard]] Result<Sha256Digest> digestFromHex(std::string_view hex);

}  // namespace edge::security::tpm
