// Fuzz target: the attestation messages the control plane parses from devices (attest/enroll,
// attest/activate, attest/quote) and the ones edged parses (challenge, credential), issue 5.
// Whatever the bytes, nothing may crash, and what parses must print and parse back the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "security/tpm/messages.hpp"

namespace tpm = edge::security::tpm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)tpm::parseEnroll(text);
    (void)tpm::parseActivate(text);
    (void)tpm::parseChallenge(text);
    (void)tpm::parseCredential(text);
    (void)tpm::parseLog(text);
    if (auto quote = tpm::parseQuote(text)) {
        auto again = tpm::parseQuote(tpm::toJson(*quote));
        if (!again || again->nonce != quote->nonce || again->error != quote->error ||
            (quote->error.empty() && (again->log != quote->log || again->quote.attest != quote->quote.attest ||
                                      again->quote.pcrs != quote->quote.pcrs))) {
            std::abort();
        }
        (void)quote->log.replay();
    }
    return 0;
}
