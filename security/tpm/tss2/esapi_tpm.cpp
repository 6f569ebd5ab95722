// ESAPI adapter of the Tpm seam. The only file that sees ESYS/TCTI types.
#include "security/tpm/esapi_tpm.hpp"

#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>
#include <utility>

#include "security/tpm/attestation.hpp"

namespace edge::security::tpm {

namespace {

constexpr TPM2_HANDLE kEkCertNvIndex = 0x01c00002;  // TCG EK Credential Profile: RSA 2048 EK cert
constexpr int kMaxPcr = 23;
constexpr std::size_t kMaxNonce = 64;
constexpr UINT16 kNvChunk = 512;  // below every TPM's NV buffer maximum (swtpm: 1024)
constexpr int kQuoteAttempts = 3;
// TPM_RC_REFERENCE_H0 as describe() prints it: the AK handle no longer refers to a loaded object.
constexpr std::string_view kAkNotLoaded = "(0x00000910)";

// TCG EK Credential Profile, template L-1: PolicySecret(TPM_RH_ENDORSEMENT) as its authPolicy.
constexpr BYTE kEkPolicy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC,
                                0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52,
                                0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

/// The decoded return code, e.g. "Esys_Quote: tpm:error(2.0): ... (0x0000098e)".
std::string describe(std::string_view call, TSS2_RC rc) {
    char code[16];
    std::snprintf(code, sizeof code, "0x%08x", rc);
    return std::string(call) + ": " + Tss2_RC_Decode(rc) + " (" + code + ")";
}

/// Transport-level failures mean the TPM went away; everything else is the TPM's answer.
std::unexpected<Error> tssFail(std::string_view call, TSS2_RC rc) {
    const TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
    const TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;
    // After a transport failure mid-command ESYS refuses further calls (bad sequence): the
    // context must be rebuilt, which the adapter does on the next call.
    const bool gone = layer == TSS2_TCTI_RC_LAYER || base == TSS2_BASE_RC_IO_ERROR ||
                      base == TSS2_BASE_RC_NO_CONNECTION || base == TSS2_BASE_RC_TRY_AGAIN ||
                      rc == TSS2_ESYS_RC_BAD_SEQUENCE;
    return fail(gone ? TpmErrc::kUnavailable : TpmErrc::kTpm, describe(call, rc));
}

/// Blocks SIGPIPE on this thread for its lifetime and swallows one raised meanwhile (a write to
/// a TPM socket whose peer died), leaving the process's signal dispositions alone.
class SigpipeGuard {
public:
    SigpipeGuard() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~SigpipeGuard() {
        if (!was_pending_) {
            sigset_t pending;
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE) == 1) {
                const timespec zero{0, 0};
                int r;
                do {
                    r = sigtimedwait(&pipe_, nullptr, &zero);
                } while (r < 0 && errno == EINTR);
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;

private:
    sigset_t pipe_{};
    sigset_t old_{};
    bool was_pending_ = false;
};

struct EsysFree {
    void operator()(void* p) const { Esys_Free(p); }
};
template <class T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

/// Flushes a transient object or session when it goes out of scope. When the flush fails (the
/// TPM is gone), the ESYS-side record is closed so nothing leaks either way.
class Transient {
public:
    Transient() = default;
    Transient(ESYS_CONTEXT* esys, ESYS_TR handle) : esys_(esys), handle_(handle) {}
    Transient(Transient&& other) noexcept
        : esys_(other.esys_), handle_(std::exchange(other.handle_, ESYS_TR_NONE)) {}
    Transient& operator=(Transient&& other) noexcept {
        if (this != &other) {
            reset();
            esys_ = other.esys_;
            handle_ = std::exchange(other.handle_, ESYS_TR_NONE);
        }
        return *this;
    }
    ~Transient() { reset(); }

    [[nodiscard]] ESYS_TR get() const { return handle_; }
    /// Drops the handle without flushing (its ESYS context is being thrown away).
    void forget() { handle_ = ESYS_TR_NONE; }
    void reset() {
        if (handle_ == ESYS_TR_NONE || esys_ == nullptr) return;
        SigpipeGuard guard;
        if (Esys_FlushContext(esys_, handle_) != TSS2_RC_SUCCESS) Esys_TR_Close(esys_, &handle_);
        handle_ = ESYS_TR_NONE;
    }

private:
    ESYS_CONTEXT* esys_ = nullptr;
    ESYS_TR handle_ = ESYS_TR_NONE;
};

TPM2B_PUBLIC ekTemplate() {
    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_RSA;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                         TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                         TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p.authPolicy.size = sizeof kEkPolicy;
    std::memcpy(p.authPolicy.buffer, kEkPolicy, sizeof kEkPolicy);
    p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
    p.unique.rsa.size = 256;  // zeros, as the template requires
    return t;
}

TPM2B_PUBLIC akTemplate() {
    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                         TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                         TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
                         // Its authorization is empty, so dictionary-attack protection guards
                         // nothing; without noDA, a TPM in lockout (power cuts count towards it)
                         // could not quote, and a healthy device would be quarantined.
                         TPMA_OBJECT_NODA;
    auto& ecc = p.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_NULL;
    ecc.scheme.scheme = TPM2_ALG_ECDSA;
    ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    return t;
}

template <class T, auto Marshal>
Result<Bytes> marshal(const T& value, std::string_view what) {
    Bytes out(sizeof(T) + 16);
    std::size_t offset = 0;
    const TSS2_RC rc = Marshal(&value, out.data(), out.size(), &offset);
    if (rc != TSS2_RC_SUCCESS) return fail(TpmErrc::kMalformed, describe(what, rc));
    out.resize(offset);
    return out;
}

/// Unmarshals exactly `bytes` (nothing missing, nothing trailing) into T.
template <class T, auto Unmarshal>
Result<T> unmarshalExact(const Bytes& bytes, std::string_view what) {
    if (bytes.empty()) return fail(TpmErrc::kMalformed, std::string(what) + " is empty");
    T value{};
    std::size_t offset = 0;
    const TSS2_RC rc = Unmarshal(bytes.data(), bytes.size(), &offset, &value);
    if (rc != TSS2_RC_SUCCESS || offset != bytes.size()) {
        return fail(TpmErrc::kMalformed, std::string(what) + " does not unmarshal");
    }
    return value;
}

bool validPcr(int pcr) { return pcr >= 0 && pcr <= kMaxPcr; }

TPML_PCR_SELECTION sha256Selection(const std::set<int>& pcrs) {
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    for (const int pcr : pcrs)
        sel.pcrSelections[0].pcrSelect[pcr / 8] |= static_cast<BYTE>(1U << (pcr % 8));
    return sel;
}

}  // namespace

struct EsapiTpm::Context {
    std::string tcti_conf;
    TSS2_TCTI_CONTEXT* tcti = nullptr;
    ESYS_CONTEXT* esys = nullptr;
    bool broken =
        false;     // the TPM went away mid-command: rebuild the contexts before the next call
    Transient ak;  // the enrolled AK, loaded between calls
    std::optional<std::pair<TPM2B_PUBLIC, TPM2B_PRIVATE>> ak_material;  // to reload it

    Context() = default;
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context() {
        ak.reset();
        close();
        if (ak_material) OPENSSL_cleanse(&ak_material->second, sizeof ak_material->second);
    }

    void close() {
        SigpipeGuard guard;
        if (esys != nullptr) Esys_Finalize(&esys);
        if (tcti != nullptr) Tss2_TctiLdr_Finalize(&tcti);
        esys = nullptr;
        tcti = nullptr;
    }

    Status connect() {
        TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti_conf.c_str(), &tcti);
        if (rc != TSS2_RC_SUCCESS) {
            tcti = nullptr;
            return fail(TpmErrc::kUnavailable,
                        describe("Tss2_TctiLdr_Initialize(" + tcti_conf + ")", rc));
        }
        rc = Esys_Initialize(&esys, tcti, nullptr);
        if (rc != TSS2_RC_SUCCESS) {
            esys = nullptr;
            close();
            return fail(TpmErrc::kUnavailable, describe("Esys_Initialize", rc));
        }
        flushStaleObjects();
        return {};
    }

    /// Without a resource manager (swtpm, /dev/tpm0) objects loaded by a process that died are
    /// never flushed, and the TPM has only a few slots (0x902 "out of memory for object
    /// contexts"). This adapter is then the TPM's only user, so at connect it flushes every
    /// transient object; behind /dev/tpmrm0 the resource manager shows only this connection's.
    void flushStaleObjects() {
        TPMS_CAPABILITY_DATA* data = nullptr;
        TPMI_YES_NO more = TPM2_NO;
        if (Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                               TPM2_TRANSIENT_FIRST, TPM2_MAX_CAP_HANDLES, &more, &data) != TSS2_RC_SUCCESS) {
            return;  // not fatal: the commands that follow report any real problem
        }
        for (UINT32 i = 0; i < data->data.handles.count; ++i) {
            ESYS_TR object = ESYS_TR_NONE;
            if (Esys_TR_FromTPMPublic(esys, data->data.handles.handle[i], ESYS_TR_NONE, ESYS_TR_NONE,
                                      ESYS_TR_NONE, &object) != TSS2_RC_SUCCESS) {
                continue;
            }
            if (Esys_FlushContext(esys, object) != TSS2_RC_SUCCESS) Esys_TR_Close(esys, &object);
        }
        Esys_Free(data);
    }

    /// Before every call: after a transport failure, reconnect and reload the enrolled AK.
    Status ready() {
        if (!broken) return {};
        ak.forget();  // belonged to the old context; a restarted TPM has lost it anyway
        close();
        if (auto s = connect(); !s) return fail(std::move(s.error()).wrap("reconnect"));
        broken = false;
        if (ak_material) {
            if (auto s = loadAk(); !s) return fail(std::move(s.error()).wrap("reconnect"));
        }
        return {};
    }

    /// Notes a transport failure so that the next call reconnects; passes the result on.
    template <class T>
    Result<T> track(Result<T> r) {
        if (!r && r.error().code() == make_error_code(TpmErrc::kUnavailable)) broken = true;
        return r;
    }

    /// Loads ak_material under a fresh EK into `ak`.
    Status loadAk() {
        auto ek = createEk();
        if (!ek) return fail(std::move(ek.error()).wrap("load AK"));
        auto session = ekPolicySession();
        if (!session) return fail(std::move(session.error()).wrap("load AK"));
        ESYS_TR handle = ESYS_TR_NONE;
        const TSS2_RC rc =
            Esys_Load(esys, ek->first.get(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE,
                      &ak_material->second, &ak_material->first, &handle);
        if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_Load(AK)", rc);
        ak = Transient(esys, handle);
        return {};
    }

    /// Runs `command` (which uses the AK); if the AK is no longer loaded (someone flushed the
    /// transient objects: no resource manager on swtpm), reloads it and runs it once more.
    template <class F>
    auto withAk(F&& command) -> decltype(command()) {
        if (ak.get() == ESYS_TR_NONE && ak_material) {  // a reload after reconnecting failed
            if (auto s = loadAk(); !s) return fail(std::move(s.error()));
        }
        auto r = command();
        if (r || !ak_material || r.error().message().find(kAkNotLoaded) == std::string::npos)
            return r;
        ak.reset();
        if (auto s = loadAk(); !s) return fail(std::move(s.error()));
        return command();
    }

    /// The endorsement key (template L-1), created afresh; flushed when the result dies.
    Result<std::pair<Transient, EsysPtr<TPM2B_PUBLIC>>> createEk() {
        const TPM2B_PUBLIC tmpl = ekTemplate();
        const TPM2B_SENSITIVE_CREATE sensitive{};
        const TPM2B_DATA outside{};
        const TPML_PCR_SELECTION creation_pcr{};
        ESYS_TR handle = ESYS_TR_NONE;
        TPM2B_PUBLIC* out_public = nullptr;
        const TSS2_RC rc = Esys_CreatePrimary(
            esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
            &tmpl, &outside, &creation_pcr, &handle, &out_public, nullptr, nullptr, nullptr);
        if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_CreatePrimary(EK)", rc);
        return std::pair{Transient(esys, handle), EsysPtr<TPM2B_PUBLIC>(out_public)};
    }

    /// A policy session satisfying the EK's policy: PolicySecret(TPM_RH_ENDORSEMENT). Single use.
    Result<Transient> ekPolicySession() {
        const TPMT_SYM_DEF symmetric{.algorithm = TPM2_ALG_NULL};
        ESYS_TR handle = ESYS_TR_NONE;
        TSS2_RC rc = Esys_StartAuthSession(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           ESYS_TR_NONE, ESYS_TR_NONE, nullptr, TPM2_SE_POLICY,
                                           &symmetric, TPM2_ALG_SHA256, &handle);
        if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_StartAuthSession", rc);
        Transient session(esys, handle);
        rc = Esys_PolicySecret(esys, ESYS_TR_RH_ENDORSEMENT, handle, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, nullptr, nullptr);
        if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_PolicySecret(endorsement)", rc);
        return session;
    }

    /// DER of the EK certificate in NV, or empty when the TPM has none.
    Result<Bytes> ekCertificate() {
        TPMI_YES_NO more = TPM2_NO;
        TPMS_CAPABILITY_DATA* raw_cap = nullptr;
        TSS2_RC rc = Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                        TPM2_CAP_HANDLES, kEkCertNvIndex, 1, &more, &raw_cap);
        EsysPtr<TPMS_CAPABILITY_DATA> cap(raw_cap);
        if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_GetCapability(NV handles)", rc);
        if (cap->data.handles.count == 0 || cap->data.handles.handle[0] != kEkCertNvIndex)
            return Bytes{};

        ESYS_TR nv = ESYS_TR_NONE;
        rc = Esys_TR_FromTPMPublic(esys, kEkCertNvIndex, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                   &nv);
        if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_TR_FromTPMPublic(EK certificate)", rc);
        struct Close {
            ESYS_CONTEXT* esys;
            ESYS_TR nv;
            ~Close() { Esys_TR_Close(esys, &nv); }  // an NV index is closed, never flushed
        } close{esys, nv};
        TPM2B_NV_PUBLIC* raw_pub = nullptr;
        rc = Esys_NV_ReadPublic(esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw_pub,
                                nullptr);
        EsysPtr<TPM2B_NV_PUBLIC> nv_public(raw_pub);
        if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_NV_ReadPublic(EK certificate)", rc);
        const UINT16 total = nv_public->nvPublic.dataSize;
        Bytes cert;
        while (cert.size() < total) {
            const auto chunk =
                static_cast<UINT16>(std::min<std::size_t>(kNvChunk, total - cert.size()));
            TPM2B_MAX_NV_BUFFER* raw_data = nullptr;
            rc = Esys_NV_Read(esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, chunk,
                              static_cast<UINT16>(cert.size()), &raw_data);
            EsysPtr<TPM2B_MAX_NV_BUFFER> data(raw_data);
            if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_NV_Read(EK certificate)", rc);
            if (data->size == 0) break;
            cert.insert(cert.end(), data->buffer, data->buffer + data->size);
        }
        return cert;
    }

    Result<PcrValues> readPcrs(const std::set<int>& wanted) {
        PcrValues out;
        TPML_PCR_SELECTION remaining = sha256Selection(wanted);
        // PCR_Read answers at most 8 digests at a time: ask again for what is left.
        while (out.size() < wanted.size()) {
            UINT32 update_counter = 0;
            TPML_PCR_SELECTION* raw_sel = nullptr;
            TPML_DIGEST* raw_values = nullptr;
            const TSS2_RC rc = Esys_PCR_Read(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                             &remaining, &update_counter, &raw_sel, &raw_values);
            EsysPtr<TPML_PCR_SELECTION> sel(raw_sel);
            EsysPtr<TPML_DIGEST> values(raw_values);
            if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_PCR_Read", rc);
            std::uint32_t next = 0;
            for (std::uint32_t s = 0; s < sel->count; ++s) {
                const auto& ps = sel->pcrSelections[s];
                if (ps.hash != TPM2_ALG_SHA256) continue;
                for (int pcr = 0; pcr < ps.sizeofSelect * 8; ++pcr) {
                    if (((ps.pcrSelect[pcr / 8] >> (pcr % 8)) & 1U) == 0) continue;
                    if (next >= values->count || values->digests[next].size != 32) {
                        return fail(TpmErrc::kTpm,
                                    "Esys_PCR_Read: answer does not match its selection");
                    }
                    Sha256Digest d{};
                    std::memcpy(d.data(), values->digests[next++].buffer, d.size());
                    out[pcr] = d;
                    remaining.pcrSelections[0].pcrSelect[pcr / 8] &=
                        static_cast<BYTE>(~(1U << (pcr % 8)));
                }
            }
            if (next == 0)
                return fail(TpmErrc::kTpm, "Esys_PCR_Read: the SHA-256 bank is not allocated");
        }
        return out;
    }
};

EsapiTpm::EsapiTpm(std::unique_ptr<Context> ctx) : ctx_(std::move(ctx)) {}
EsapiTpm::~EsapiTpm() = default;

Result<std::unique_ptr<Tpm>> EsapiTpm::open(const std::string& tcti) {
    if (tcti.empty()) return fail(TpmErrc::kUnavailable, "no TPM configured (empty TCTI)");
    SigpipeGuard guard;
    auto ctx = std::make_unique<Context>();
    ctx->tcti_conf = tcti;
    if (auto s = ctx->connect(); !s) return fail(std::move(s.error()));
    return std::unique_ptr<Tpm>(new EsapiTpm(std::move(ctx)));
}

Result<EnrollmentKeys> EsapiTpm::enroll(const std::optional<AkBlob>& existing) {
    SigpipeGuard guard;
    Context& c = *ctx_;
    TPM2B_PUBLIC ak_public{};
    TPM2B_PRIVATE ak_private{};
    if (existing) {
        std::size_t offset = 0;
        const Bytes& blob = existing->data;
        if (blob.empty() ||
            Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob.data(), blob.size(), &offset, &ak_public) !=
                TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob.data(), blob.size(), &offset, &ak_private) !=
                TSS2_RC_SUCCESS ||
            offset != blob.size()) {
            return fail(TpmErrc::kMalformed,
                        "enroll: AK blob is not TPM2B_PUBLIC || TPM2B_PRIVATE");
        }
    }
    return c.track([&]() -> Result<EnrollmentKeys> {
        if (auto s = c.ready(); !s) return fail(std::move(s.error()).wrap("enroll"));
        c.ak.reset();  // a previous AK would take one of the few object slots
        c.ak_material.reset();

        auto ek = c.createEk();
        if (!ek) return fail(std::move(ek.error()).wrap("enroll"));
        auto& [ek_handle, ek_public] = *ek;
        if (!existing) {
            auto session = c.ekPolicySession();
            if (!session) return fail(std::move(session.error()).wrap("enroll: create AK"));
            const TPM2B_PUBLIC tmpl = akTemplate();
            const TPM2B_SENSITIVE_CREATE sensitive{};
            const TPM2B_DATA outside{};
            const TPML_PCR_SELECTION creation_pcr{};
            TPM2B_PRIVATE* raw_private = nullptr;
            TPM2B_PUBLIC* raw_public = nullptr;
            const TSS2_RC rc = Esys_Create(c.esys, ek_handle.get(), session->get(), ESYS_TR_NONE,
                                           ESYS_TR_NONE, &sensitive, &tmpl, &outside, &creation_pcr,
                                           &raw_private, &raw_public, nullptr, nullptr, nullptr);
            EsysPtr<TPM2B_PRIVATE> out_private(raw_private);
            EsysPtr<TPM2B_PUBLIC> out_public(raw_public);
            if (rc != TSS2_RC_SUCCESS)
                return fail(tssFail("Esys_Create(AK)", rc).error().wrap("enroll"));
            ak_public = *out_public;
            ak_private = *out_private;
            OPENSSL_cleanse(out_private.get(), sizeof(TPM2B_PRIVATE));
        }
        auto ek_bytes =
            marshal<TPM2B_PUBLIC, &Tss2_MU_TPM2B_PUBLIC_Marshal>(*ek_public, "EK public");
        ek_handle.reset();  // loadAk() creates its own EK: never hold two

        c.ak_material.emplace(ak_public, ak_private);
        if (auto s = c.loadAk(); !s) {
            c.ak_material.reset();
            return fail(std::move(s.error()).wrap("enroll"));
        }
        TPM2B_NAME* raw_name = nullptr;
        const TSS2_RC rc = Esys_TR_GetName(c.esys, c.ak.get(), &raw_name);
        EsysPtr<TPM2B_NAME> name(raw_name);
        if (rc != TSS2_RC_SUCCESS)
            return fail(tssFail("Esys_TR_GetName(AK)", rc).error().wrap("enroll"));

        auto ak_bytes =
            marshal<TPM2B_PUBLIC, &Tss2_MU_TPM2B_PUBLIC_Marshal>(ak_public, "AK public");
        auto priv_bytes =
            marshal<TPM2B_PRIVATE, &Tss2_MU_TPM2B_PRIVATE_Marshal>(ak_private, "AK private");
        if (!ek_bytes || !ak_bytes || !priv_bytes) {
            return fail(TpmErrc::kMalformed, "enroll: cannot marshal the enrollment keys");
        }
        EnrollmentKeys keys;
        keys.ek_public = std::move(*ek_bytes);
        keys.ak_public = *ak_bytes;
        keys.ak_name.assign(name->name, name->name + name->size);
        keys.ak_blob.data = std::move(*ak_bytes);
        keys.ak_blob.data.insert(keys.ak_blob.data.end(), priv_bytes->begin(), priv_bytes->end());
        auto cert = c.ekCertificate();
        if (!cert) return fail(std::move(cert.error()).wrap("enroll: read EK certificate"));
        keys.ek_certificate = std::move(*cert);
        return keys;
    }());
}

Result<Bytes> EsapiTpm::activateCredential(const Bytes& credential_blob,
                                           const Bytes& encrypted_secret) {
    SigpipeGuard guard;
    Context& c = *ctx_;
    if (!c.ak_material) return fail(TpmErrc::kBadArgument, "activate credential: no AK enrolled");
    auto blob = unmarshalExact<TPM2B_ID_OBJECT, &Tss2_MU_TPM2B_ID_OBJECT_Unmarshal>(
        credential_blob, "TPM2B_ID_OBJECT");
    if (!blob) return fail(std::move(blob.error()).wrap("activate credential"));
    auto secret = unmarshalExact<TPM2B_ENCRYPTED_SECRET, &Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal>(
        encrypted_secret, "TPM2B_ENCRYPTED_SECRET");
    if (!secret) return fail(std::move(secret.error()).wrap("activate credential"));

    return c.track([&]() -> Result<Bytes> {
        if (auto s = c.ready(); !s) return fail(std::move(s.error()).wrap("activate credential"));
        return c.withAk([&]() -> Result<Bytes> {
            auto ek = c.createEk();
            if (!ek) return fail(std::move(ek.error()).wrap("activate credential"));
            auto session = c.ekPolicySession();
            if (!session) return fail(std::move(session.error()).wrap("activate credential"));
            TPM2B_DIGEST* raw_cert_info = nullptr;
            // The AK is authorized with its (empty) password in the ADMIN role, the EK by policy.
            const TSS2_RC rc = Esys_ActivateCredential(
                c.esys, c.ak.get(), ek->first.get(), ESYS_TR_PASSWORD, session->get(), ESYS_TR_NONE,
                &*blob, &*secret, &raw_cert_info);
            EsysPtr<TPM2B_DIGEST> cert_info(raw_cert_info);
            if (rc != TSS2_RC_SUCCESS) {
                return fail(
                    tssFail("Esys_ActivateCredential", rc).error().wrap("activate credential"));
            }
            Bytes out(cert_info->buffer, cert_info->buffer + cert_info->size);
            OPENSSL_cleanse(cert_info->buffer, cert_info->size);
            return out;
        });
    }());
}

Status EsapiTpm::extendPcr(int pcr, const Sha256Digest& digest) {
    if (!validPcr(pcr))
        return fail(TpmErrc::kBadArgument, "extend: PCR " + std::to_string(pcr) + " out of range");
    SigpipeGuard guard;
    Context& c = *ctx_;
    return c.track([&]() -> Status {
        if (auto s = c.ready(); !s) return fail(std::move(s.error()).wrap("extend PCR"));
        TPML_DIGEST_VALUES values{};
        values.count = 1;
        values.digests[0].hashAlg = TPM2_ALG_SHA256;
        std::memcpy(values.digests[0].digest.sha256, digest.data(), digest.size());
        const TSS2_RC rc = Esys_PCR_Extend(c.esys, static_cast<ESYS_TR>(ESYS_TR_PCR0 + pcr),
                                           ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &values);
        if (rc != TSS2_RC_SUCCESS)
            return fail(tssFail("Esys_PCR_Extend", rc).error().wrap("extend PCR"));
        return {};
    }());
}

Result<PcrValues> EsapiTpm::readPcrs(const std::vector<int>& pcrs) {
    std::set<int> wanted;
    for (const int pcr : pcrs) {
        if (!validPcr(pcr))
            return fail(TpmErrc::kBadArgument,
                        "read: PCR " + std::to_string(pcr) + " out of range");
        wanted.insert(pcr);
    }
    SigpipeGuard guard;
    Context& c = *ctx_;
    return c.track([&]() -> Result<PcrValues> {
        if (auto s = c.ready(); !s) return fail(std::move(s.error()).wrap("read PCRs"));
        auto values = c.readPcrs(wanted);
        if (!values) return fail(std::move(values.error()).wrap("read PCRs"));
        return values;
    }());
}

Result<Quote> EsapiTpm::quote(const Bytes& nonce, const std::vector<int>& pcrs) {
    Context& c = *ctx_;
    if (!c.ak_material) return fail(TpmErrc::kBadArgument, "quote: no AK enrolled");
    if (nonce.size() > kMaxNonce)
        return fail(TpmErrc::kBadArgument, "quote: nonce longer than 64 bytes");
    std::set<int> wanted;
    for (const int pcr : pcrs) {
        if (!validPcr(pcr))
            return fail(TpmErrc::kBadArgument,
                        "quote: PCR " + std::to_string(pcr) + " out of range");
        wanted.insert(pcr);
    }
    if (wanted.empty()) return fail(TpmErrc::kBadArgument, "quote: no PCRs selected");
    SigpipeGuard guard;
    TPM2B_DATA qualifying{};
    qualifying.size = static_cast<UINT16>(nonce.size());
    std::copy(nonce.begin(), nonce.end(), qualifying.buffer);
    const TPMT_SIG_SCHEME scheme{.scheme = TPM2_ALG_NULL};  // the AK's own: ECDSA-SHA256
    const TPML_PCR_SELECTION selection = sha256Selection(wanted);

    return c.track([&]() -> Result<Quote> {
        if (auto s = c.ready(); !s) return fail(std::move(s.error()).wrap("quote"));
        // Read, then quote; an extend landing in between makes the digests differ: try again.
        for (int attempt = 1;; ++attempt) {
            auto values = c.readPcrs(wanted);
            if (!values) return fail(std::move(values.error()).wrap("quote"));
            auto quoted = c.withAk([&]() -> Result<Quote> {
                TPM2B_ATTEST* raw_quoted = nullptr;
                TPMT_SIGNATURE* raw_sig = nullptr;
                const TSS2_RC rc =
                    Esys_Quote(c.esys, c.ak.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               &qualifying, &scheme, &selection, &raw_quoted, &raw_sig);
                EsysPtr<TPM2B_ATTEST> attest(raw_quoted);
                EsysPtr<TPMT_SIGNATURE> signature(raw_sig);
                if (rc != TSS2_RC_SUCCESS) return tssFail("Esys_Quote", rc);
                Quote out;
                out.attest.assign(attest->attestationData, attest->attestationData + attest->size);
                auto sig = marshal<TPMT_SIGNATURE, &Tss2_MU_TPMT_SIGNATURE_Marshal>(
                    *signature, "TPMT_SIGNATURE");
                if (!sig) return fail(std::move(sig.error()));
                out.signature = std::move(*sig);
                return out;
            });
            if (!quoted) return fail(std::move(quoted.error()).wrap("quote"));
            quoted->pcrs = std::move(*values);
            auto digest = quotedPcrDigest(quoted->attest);
            if (!digest) return fail(std::move(digest.error()).wrap("quote: the TPM's answer"));
            const Sha256Digest composite = pcrCompositeDigest(quoted->pcrs);
            if (std::equal(composite.begin(), composite.end(), digest->begin(), digest->end()))
                return quoted;
            if (attempt == kQuoteAttempts) {
                return fail(TpmErrc::kTpm, "quote: PCRs kept changing while quoting (" +
                                               std::to_string(kQuoteAttempts) + " attempts)");
            }
        }
    }());
}

}  // namespace edge::security::tpm
