// Fuzz target: everything edged does with a desired-topic payload before trusting it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "security/bundle_signing.hpp"
#include "security/jws.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace edge;
    static const auto key = *security::PrivateKey::generate(security::Algorithm::kEd25519);
    static const auto root = security::TrustRoot::create({key.publicKey()}, 1);
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)security::jwsParse(text);
    (void)bundle::fromJson(text);
    (void)security::verifyBundle(text, root, {"edge-1", 0, 1'790'000'000});
    (void)security::TrustRoot::fromJson(text);
    return 0;
}
