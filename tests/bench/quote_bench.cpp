// TPM quote benchmark (issue 5). On the control plane: quotes verified per second by
// verifyQuote (parse TPMS_ATTEST and TPMT_SIGNATURE, nonce, selection, PCR digest, ECDSA) against
// raw ECDSA P-256 verifies per second with OpenSSL over the same key and message, in the same
// run (target: verifyQuote within 1.5x). On the device: the median quote round trip (read PCRs +
// TPM2_Quote) with swtpm. The quote comes from a real TPM: EDGE_BENCH_TCTI, else a swtpm this
// program starts on a free port. Usage: quote_bench [verifies-per-round] [rounds]
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "security/tpm/attestation.hpp"
#include "security/tpm/esapi_tpm.hpp"
#include "tests/support/ports.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace tpm = edge::security::tpm;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

/// The TPMT_SIGNATURE's r,s as DER: what the raw baseline verifies (conversion not timed).
std::vector<unsigned char> derSignature(const tpm::Bytes& sig) {
    // TPMT_SIGNATURE for ECDSA: sigAlg(2) hash(2) r(2+n) s(2+m).
    std::size_t at = 4;
    auto part = [&] {
        const std::size_t n = (std::size_t{sig.at(at)} << 8) | sig.at(at + 1);
        BIGNUM* bn = BN_bin2bn(sig.data() + at + 2, static_cast<int>(n), nullptr);
        at += 2 + n;
        return bn;
    };
    BIGNUM* r = part();
    BIGNUM* s = part();
    ECDSA_SIG* e = ECDSA_SIG_new();
    ECDSA_SIG_set0(e, r, s);
    std::vector<unsigned char> der(static_cast<std::size_t>(i2d_ECDSA_SIG(e, nullptr)));
    unsigned char* p = der.data();
    i2d_ECDSA_SIG(e, &p);
    ECDSA_SIG_free(e);
    return der;
}

struct SwtpmProcess {
    edge::test::TempDir dir;
    edge::test::Process process;
    std::string tcti;
};

/// Starts swtpm on a free port pair; nullopt if it is not installed or does not come up.
std::unique_ptr<SwtpmProcess> startSwtpm() {
    auto s = std::make_unique<SwtpmProcess>();
    for (int attempt = 0; attempt < 3; ++attempt) {
        const int port = edge::test::freePort();
        try {
            s->process = edge::test::Process::spawn(
                {"swtpm", "socket", "--tpm2", "--server",
                 "type=tcp,port=" + std::to_string(port) + ",bindaddr=127.0.0.1", "--ctrl",
                 "type=tcp,port=" + std::to_string(port + 1) + ",bindaddr=127.0.0.1", "--tpmstate",
                 "dir=" + s->dir.path().string(), "--flags", "not-need-init,startup-clear"},
                s->dir / "swtpm.out");
        } catch (const std::exception& e) {
            std::printf("swtpm not started: %s\n", e.what());
            return nullptr;
        }
        s->tcti = "swtpm:host=127.0.0.1,port=" + std::to_string(port);
        const bool up = edge::test::waitUntil(
            [&] {
                if (!s->process.running()) return true;
                return tpm::EsapiTpm::open(s->tcti).has_value();
            },
            std::chrono::seconds(10), std::chrono::milliseconds(20));
        if (up && s->process.running()) return s;
        s->process.kill();
    }
    return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
    const int per_round = argc > 1 ? std::atoi(argv[1]) : 2000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;

    std::unique_ptr<SwtpmProcess> swtpm;
    std::string tcti;
    if (const char* env = std::getenv("EDGE_BENCH_TCTI"); env != nullptr && *env != '\0') {
        tcti = env;
    } else {
        swtpm = startSwtpm();
        if (!swtpm) {
            std::printf("no TPM: set EDGE_BENCH_TCTI or install swtpm\n");
            return 1;
        }
        tcti = swtpm->tcti;
    }
    auto device = tpm::EsapiTpm::open(tcti);
    if (!device) {
        std::printf("open %s: %s\n", tcti.c_str(), device.error().what().c_str());
        return 1;
    }
    auto keys = (*device)->enroll(std::nullopt);
    if (!keys) {
        std::printf("enroll: %s\n", keys.error().what().c_str());
        return 1;
    }
    auto ak = tpm::checkAkPublic(keys->ak_public);
    const tpm::Bytes nonce(32, 0x5a);
    const std::vector<int> selection{0, 1, 2, 3, 4, 5, 6, 7, 23};
    auto quote = (*device)->quote(nonce, selection);
    if (!ak || !quote) {
        std::printf("quote: %s\n", (!ak ? ak.error() : quote.error()).what().c_str());
        return 1;
    }

    // Raw baseline: the same key parsed by OpenSSL, the same message, the signature as DER.
    BIO* bio = BIO_new_mem_buf(ak->pem.data(), static_cast<int>(ak->pem.size()));
    EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    const auto der = derSignature(quote->signature);
    auto rawVerify = [&] {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pkey);
        const int ok = EVP_DigestVerify(ctx, der.data(), der.size(), quote->attest.data(),
                                        quote->attest.size());
        EVP_MD_CTX_free(ctx);
        return ok == 1;
    };

    std::vector<double> raw_rates;
    std::vector<double> quote_rates;
    std::vector<double> bytes_rates;
    std::size_t failures = 0;
    auto rate = [&](auto&& fn) {
        const auto start = Clock::now();
        for (int i = 0; i < per_round; ++i) failures += fn() ? 0 : 1;
        return per_round / std::chrono::duration<double>(Clock::now() - start).count();
    };
    for (int r = 0; r < rounds; ++r) {  // interleaved, so both see the same machine load
        raw_rates.push_back(rate(rawVerify));
        quote_rates.push_back(rate([&] {
            return tpm::verifyQuote(*ak, quote->attest, quote->signature, nonce, quote->pcrs)
                .has_value();
        }));
        bytes_rates.push_back(rate([&] {
            return tpm::verifyQuote(keys->ak_public, quote->attest, quote->signature, nonce,
                                    quote->pcrs)
                .has_value();
        }));
    }
    EVP_PKEY_free(pkey);

    const double raw = median(raw_rates);
    const double verified = median(quote_rates);
    std::printf("quote verification, %d rounds x %d, %zu PCRs, medians:\n", rounds, per_round,
                selection.size());
    std::printf("  raw ECDSA P-256 verify (OpenSSL)      %9.0f /s\n", raw);
    std::printf(
        "  verifyQuote (enrolled AkInfo)         %9.0f /s   raw/verifyQuote = %.2fx (target <= "
        "1.5x)\n",
        verified, raw / verified);
    std::printf("  verifyQuote (AK TPM2B_PUBLIC bytes)   %9.0f /s   raw/this = %.2fx\n",
                median(bytes_rates), raw / median(bytes_rates));
    if (failures != 0) std::printf("  FAILED verifications: %zu\n", failures);

    std::vector<double> trips;
    for (int i = 0; i < 50; ++i) {
        const auto start = Clock::now();
        auto q = (*device)->quote(nonce, selection);
        trips.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (!q) {
            std::printf("quote failed: %s\n", q.error().what().c_str());
            return 1;
        }
    }
    std::sort(trips.begin(), trips.end());
    std::printf(
        "device quote round trip (read PCRs + TPM2_Quote, %s): median %.2f ms, p90 %.2f ms (50 "
        "quotes)\n",
        swtpm ? "swtpm" : tcti.c_str(), trips[trips.size() / 2], trips[trips.size() * 9 / 10]);
    return failures == 0 ? 0 : 1;
}
