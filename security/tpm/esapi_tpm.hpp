#pragma once
// EsapiTpm: the Tpm seam over TPM2-TSS ESAPI (libtss2-esys), with the TCTI chosen at run time
// through the TCTI loader: "device:/dev/tpmrm0" on hardware, "swtpm:host=127.0.0.1,port=P" for
// swtpm. No vendor types here; only this adapter's .cpp includes TSS2 headers.
//
// Resource discipline (swtpm has 3 transient object slots and no resource manager): the only
// object kept loaded between calls is the AK; the EK is re-created (deterministic) for each
// call that needs it and flushed, policy sessions are started per command and flushed, all by
// RAII even on errors.
//
// SIGPIPE: the socket TCTIs write with write(2); while a call runs, SIGPIPE is blocked on the
// calling thread and a SIGPIPE raised by a dead TPM socket is consumed, so a TPM that goes away
// gives an error (kUnavailable with the decoded TSS rc), not a killed process.
#include <memory>
#include <string>

#include "security/tpm/tpm.hpp"

namespace edge::security::tpm {

class EsapiTpm final : public Tpm {
public:
    /// Loads the TCTI and opens an ESAPI context. kUnavailable when `tcti` is empty (no TPM
    /// configured), the TCTI cannot be loaded or the TPM does not answer.
    static Result<std::unique_ptr<Tpm>> open(const std::string& tcti);

    ~EsapiTpm() override;
    EsapiTpm(const EsapiTpm&) = delete;
    EsapiTpm& operator=(const EsapiTpm&) = delete;

    Result<EnrollmentKeys> enroll(const std::optional<AkBlob>& existing) override;
    Result<Bytes> activateCredential(const Bytes& credential_blob,
                                     const Bytes& encrypted_secret) override;
    Status extendPcr(int pcr, const Sha256Digest& digest) override;
    Result<PcrValues> readPcrs(const std::vector<int>& pcrs) override;
    Result<Quote> quote(const Bytes& nonce, const std::vector<int>& pcrs) override;

    struct Context;  // TSS2 contexts and the loaded AK; defined in esapi_tpm.cpp

private:
    explicit EsapiTpm(std::unique_ptr<Context> ctx);
    std::unique_ptr<Context> ctx_;
};

}  // namespace edge::security::tpm
