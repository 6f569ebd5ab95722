// Fuzz target: the control plane's TPM attestation parsers (issue 5). Input layout, so one input
// reaches every parser: [u16 len][AK TPM2B_PUBLIC][u16 len][TPMS_ATTEST][u16 len][TPMT_SIGNATURE]
// [rest: nonce]; the whole input is also fed to each parser on its own. Whatever the bytes,
// nothing may crash, and nothing short of a real signed quote may verify.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "security/tpm/attestation.hpp"

namespace tpm = edge::security::tpm;

namespace {

tpm::Bytes take(const std::uint8_t*& data, std::size_t& size) {
    if (size < 2) {
        data += size;
        size = 0;
        return {};
    }
    std::size_t len = (std::size_t{data[0]} << 8) | data[1];
    data += 2;
    size -= 2;
    if (len > size) len = size;
    tpm::Bytes out(data, data + len);
    data += len;
    size -= len;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const tpm::Bytes whole(data, data + size);
    (void)tpm::objectName(whole);
    (void)tpm::checkAkPublic(whole);
    (void)tpm::quotedPcrDigest(whole);
    (void)tpm::makeCredential(whole, tpm::Bytes(34, 0x0b), tpm::Bytes(16, 1));

    const tpm::Bytes ak_public = take(data, size);
    const tpm::Bytes attest = take(data, size);
    const tpm::Bytes signature = take(data, size);
    const tpm::Bytes nonce(data, data + size);
    (void)tpm::quotedPcrDigest(attest);

    auto ak = tpm::checkAkPublic(ak_public);
    if (!ak) return 0;
    // The PCR values a device would claim: a few selections around what seeds use.
    for (const auto& pcrs :
         {tpm::PcrValues{}, tpm::PcrValues{{23, {}}}, tpm::PcrValues{{0, {}}, {23, {}}}}) {
        auto info = tpm::verifyQuote(*ak, attest, signature, nonce, pcrs);
        if (info && info->pcrs != pcrs) std::abort();  // a verified quote reports what it checked
        (void)tpm::verifyQuote(ak_public, attest, signature, nonce, pcrs);
    }
    return 0;
}
