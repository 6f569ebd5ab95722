#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "security/crypto.hpp"

namespace sec = edge::security;
using sec::Algorithm;
using sec::SecurityErrc;

namespace {

// RFC 8037 appendix A: Ed25519 key and the JWS signature of its example.
constexpr const char* kRfc8037PublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
    "-----END PUBLIC KEY-----\n";
constexpr const char* kRfc8037PrivatePem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";
constexpr const char* kRfc8037Input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
constexpr const char* kRfc8037Signature =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
// sha256 of the DER SubjectPublicKeyInfo above (openssl pkey -pubin -outform DER | sha256sum).
constexpr const char* kRfc8037KeyId = "06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9";

// RFC 7515 appendix A.3: ES256 key and the JWS signature of its example (raw r||s).
constexpr const char* kRfc7515Es256Pem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
    "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
    "-----END PUBLIC KEY-----\n";
constexpr const char* kRfc7515Input =
    "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
constexpr const char* kRfc7515Signature =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

constexpr const char* kP384PublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEaxnuj6XA9rNoexUJSyUCsyvpP0+XvJQW\n"
    "Q+3/Agj8XSvcOkko1H/XGSFCSXyKj1/jrBSECJA3qefASpcJupsOczly0hLTbaMJ\n"
    "zlIxdRQfJTbfGTXXPDMVR221xf5jOnT6\n"
    "-----END PUBLIC KEY-----\n";
constexpr const char* kEncryptedPem =  // password "secret"
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjUbEKiD4Y+5AICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEEKeCLnwz2pc/m8Fgv5tleZUEQK0k\n"
    "jRwc0M8D4pQQOexFVPnJNCbxGVDuxIknltovtiUitpf0ae/oGsLFWDtiSoO8jb/X\n"
    "Rcv6/eODBQDSYhnwWAs=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

std::string decode(std::string_view b64) {
    auto bytes = sec::base64UrlDecode(b64);
    REQUIRE(bytes);
    return *bytes;
}

class TempDir {
public:
    TempDir() {
        std::string templ = (std::filesystem::temp_directory_path() / "edge-crypto-XXXXXX").string();
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        path_ = templ;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

const Algorithm kBoth[] = {Algorithm::kEd25519, Algorithm::kEs256};

}  // namespace

TEST_CASE("Algorithm names: JWS and CLI names map both ways and unknown names are rejected") {
    CHECK(sec::jwsAlgName(Algorithm::kEd25519) == "EdDSA");
    CHECK(sec::jwsAlgName(Algorithm::kEs256) == "ES256");
    CHECK(sec::algorithmFromJws("EdDSA").value() == Algorithm::kEd25519);
    CHECK(sec::algorithmFromJws("ES256").value() == Algorithm::kEs256);
    CHECK(sec::algorithmFromJws("none").error().code() == SecurityErrc::kMalformed);
    CHECK(sec::algorithmFromJws("HS256").error().code() == SecurityErrc::kMalformed);
    CHECK(sec::algorithmFromName("ed25519").value() == Algorithm::kEd25519);
    CHECK(sec::algorithmFromName("es256").value() == Algorithm::kEs256);
    CHECK(sec::algorithmFromName("rsa").error().code() == SecurityErrc::kKey);
}

TEST_CASE("Security errors: the category is named edge.security and every code has a message") {
    const std::error_code code = SecurityErrc::kThresholdNotMet;
    CHECK(std::string(code.category().name()) == "edge.security");
    for (int c = 1; c <= static_cast<int>(SecurityErrc::kTrustRoot); ++c) {
        CHECK(sec::securityCategory().message(c).find("unknown") == std::string::npos);
    }
}

TEST_CASE("Keys: a signature verifies with the matching public key for both algorithms") {
    for (const Algorithm alg : kBoth) {
        CAPTURE(sec::jwsAlgName(alg));
        auto key = sec::PrivateKey::generate(alg);
        REQUIRE(key);
        CHECK(key->algorithm() == alg);
        CHECK(key->publicKey().algorithm() == alg);
        auto sig = key->sign("hello bundle");
        REQUIRE(sig);
        CHECK(sig->size() == 64);
        CHECK(key->publicKey().verify("hello bundle", *sig));
        auto empty_sig = key->sign("");
        REQUIRE(empty_sig);
        CHECK(key->publicKey().verify("", *empty_sig));
    }
}

TEST_CASE("Keys: tampered data, a tampered signature or another key fail with kBadSignature") {
    for (const Algorithm alg : kBoth) {
        CAPTURE(sec::jwsAlgName(alg));
        auto key = sec::PrivateKey::generate(alg);
        auto other = sec::PrivateKey::generate(alg);
        REQUIRE(key);
        REQUIRE(other);
        const std::string sig = key->sign("payload").value();
        const auto pub = key->publicKey();

        CHECK(pub.verify("payloaD", sig).error().code() == SecurityErrc::kBadSignature);
        std::string flipped = sig;
        flipped[10] = static_cast<char>(flipped[10] ^ 0x01);
        CHECK(pub.verify("payload", flipped).error().code() == SecurityErrc::kBadSignature);
        CHECK(other->publicKey().verify("payload", sig).error().code() == SecurityErrc::kBadSignature);
        CHECK(pub.verify("payload", sig.substr(0, 63)).error().code() == SecurityErrc::kBadSignature);
        CHECK(pub.verify("payload", sig + '\0').error().code() == SecurityErrc::kBadSignature);
        CHECK(pub.verify("payload", "").error().code() == SecurityErrc::kBadSignature);
        CHECK(pub.verify("payload", std::string(64, '\0')).error().code() == SecurityErrc::kBadSignature);
    }
}

TEST_CASE("Keys: ES256 signatures are raw r||s of 64 bytes, not DER") {
    auto key = sec::PrivateKey::generate(Algorithm::kEs256);
    REQUIRE(key);
    for (int i = 0; i < 32; ++i) {  // r or s with leading zeros must still be padded to 32 bytes
        const auto sig = key->sign("message " + std::to_string(i));
        REQUIRE(sig);
        REQUIRE(sig->size() == 64);
        CHECK(key->publicKey().verify("message " + std::to_string(i), *sig));
    }
}

TEST_CASE("Keys: the RFC 8037 Ed25519 example signs and verifies to the published bytes") {
    auto priv = sec::PrivateKey::fromPem(kRfc8037PrivatePem);
    REQUIRE(priv);
    CHECK(sec::base64UrlEncode(priv->sign(kRfc8037Input).value()) == kRfc8037Signature);
    auto pub = sec::PublicKey::fromPem(kRfc8037PublicPem);
    REQUIRE(pub);
    CHECK(pub->verify(kRfc8037Input, decode(kRfc8037Signature)));
    CHECK(pub->keyId() == kRfc8037KeyId);
    CHECK(priv->publicKey().keyId() == kRfc8037KeyId);
}

TEST_CASE("Keys: the RFC 7515 ES256 example signature verifies") {
    auto pub = sec::PublicKey::fromPem(kRfc7515Es256Pem);
    REQUIRE(pub);
    CHECK(pub->algorithm() == Algorithm::kEs256);
    CHECK(pub->verify(kRfc7515Input, decode(kRfc7515Signature)));
    CHECK(pub->verify(std::string(kRfc7515Input) + "x", decode(kRfc7515Signature)).error().code() ==
          SecurityErrc::kBadSignature);
}

TEST_CASE("Keys: PEM roundtrip keeps the key and its id") {
    for (const Algorithm alg : kBoth) {
        CAPTURE(sec::jwsAlgName(alg));
        auto key = sec::PrivateKey::generate(alg);
        REQUIRE(key);
        const std::string pem = key->toPem().value();
        CHECK(pem.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);
        auto again = sec::PrivateKey::fromPem(pem);
        REQUIRE(again);
        CHECK(again->algorithm() == alg);
        CHECK(again->publicKey().keyId() == key->publicKey().keyId());
        CHECK(key->publicKey().verify("x", again->sign("x").value()));

        const std::string pub_pem = key->publicKey().toPem();
        CHECK(pub_pem.rfind("-----BEGIN PUBLIC KEY-----", 0) == 0);
        auto pub = sec::PublicKey::fromPem(pub_pem);
        REQUIRE(pub);
        CHECK(pub->keyId() == key->publicKey().keyId());
        CHECK(pub->keyId().size() == 64);
        CHECK(pub->keyId().find_first_not_of("0123456789abcdef") == std::string::npos);
        CHECK(pub->verify("y", key->sign("y").value()));
    }
}

TEST_CASE("Keys: distinct keys have distinct ids and copies share the same key") {
    auto a = sec::PrivateKey::generate(Algorithm::kEd25519).value();
    auto b = sec::PrivateKey::generate(Algorithm::kEd25519).value();
    CHECK(a.publicKey().keyId() != b.publicKey().keyId());
    const sec::PrivateKey copy = a;
    const sec::PublicKey pub_copy = a.publicKey();
    CHECK(pub_copy.verify("z", copy.sign("z").value()));
}

TEST_CASE("Keys: bad, unsupported or encrypted PEM is rejected with kKey") {
    CHECK(sec::PublicKey::fromPem("").error().code() == SecurityErrc::kKey);
    CHECK(sec::PublicKey::fromPem("not a pem").error().code() == SecurityErrc::kKey);
    CHECK(sec::PrivateKey::fromPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
              .error().code() == SecurityErrc::kKey);
    const auto p384 = sec::PublicKey::fromPem(kP384PublicPem);
    REQUIRE_FALSE(p384);
    CHECK(p384.error().code() == SecurityErrc::kKey);
    CHECK(p384.error().message().find("P-256") != std::string::npos);
    // Encrypted keys fail instead of prompting for a password.
    CHECK(sec::PrivateKey::fromPem(kEncryptedPem).error().code() == SecurityErrc::kKey);
    // A public key is not a private key, and the reverse.
    CHECK(sec::PrivateKey::fromPem(kRfc8037PublicPem).error().code() == SecurityErrc::kKey);
    CHECK(sec::PublicKey::fromPem(kRfc8037PrivatePem).error().code() == SecurityErrc::kKey);
    CHECK(sec::PublicKey::fromPem(std::string(100 * 1024, 'A')).error().code() == SecurityErrc::kKey);
}

TEST_CASE("Keys: saveFile writes mode 0600 even with a permissive umask and loadFile reads it back") {
    TempDir dir;
    const auto path = dir.path() / "signing.pem";
    const mode_t old_umask = ::umask(0);
    for (const Algorithm alg : kBoth) {
        CAPTURE(sec::jwsAlgName(alg));
        auto key = sec::PrivateKey::generate(alg).value();
        REQUIRE(key.saveFile(path));  // the second iteration replaces the first file
        struct stat st {};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        auto loaded = sec::PrivateKey::loadFile(path);
        REQUIRE(loaded);
        CHECK(loaded->algorithm() == alg);
        CHECK(loaded->publicKey().keyId() == key.publicKey().keyId());
    }
    ::umask(old_umask);
    // Only the key file remains: no temporary files left behind.
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                        std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("Keys: loading a missing or non-key file fails with kKey naming the path") {
    TempDir dir;
    auto missing = sec::PrivateKey::loadFile(dir.path() / "nope.pem");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == SecurityErrc::kKey);
    CHECK(missing.error().what().find("nope.pem") != std::string::npos);

    std::ofstream(dir.path() / "junk.pem") << "junk";
    auto junk = sec::PrivateKey::loadFile(dir.path() / "junk.pem");
    REQUIRE_FALSE(junk);
    CHECK(junk.error().code() == SecurityErrc::kKey);
    CHECK(junk.error().what().find("junk.pem") != std::string::npos);

    CHECK(sec::PrivateKey::loadFile(dir.path()).error().code() == SecurityErrc::kKey);
    auto key = sec::PrivateKey::generate(Algorithm::kEd25519).value();
    CHECK(key.saveFile(dir.path() / "no-such-dir" / "k.pem").error().code() == SecurityErrc::kKey);
}

TEST_CASE("sha256: known vectors in raw and hex form") {
    CHECK(sec::sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sec::sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sec::sha256("abc").size() == 32);
    CHECK(sec::toHex(sec::sha256("abc")) == sec::sha256Hex("abc"));
}

TEST_CASE("toHex: lowercase, two digits per byte") {
    CHECK(sec::toHex("") == "");
    CHECK(sec::toHex(std::string("\x00\x0f\xab\xff", 4)) == "000fabff");
}

TEST_CASE("base64url: RFC 4648 vectors encode without padding and decode back") {
    const std::pair<std::string, std::string> vectors[] = {
        {"", ""},         {"f", "Zg"},         {"fo", "Zm8"},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : vectors) {
        CHECK(sec::base64UrlEncode(plain) == encoded);
        CHECK(sec::base64UrlDecode(encoded).value() == plain);
    }
    // The URL-safe alphabet: 0xfb 0xff -> "-_8" (standard base64 would give "+/8=").
    CHECK(sec::base64UrlEncode(std::string("\xfb\xff", 2)) == "-_8");
    CHECK(sec::base64UrlDecode("-_8").value() == std::string("\xfb\xff", 2));
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    CHECK(sec::base64UrlDecode(sec::base64UrlEncode(all)).value() == all);
}

TEST_CASE("base64url: padding, foreign characters, impossible lengths and stray bits are kMalformed") {
    for (const char* bad : {"Zg==", "Zm8=", "+/8", "Zm9v\n", "Zm 9v", "Z", "Zm9vY", "Zh", "Zm9", "é"}) {
        CAPTURE(bad);
        const auto decoded = sec::base64UrlDecode(bad);
        REQUIRE_FALSE(decoded);
        CHECK(decoded.error().code() == SecurityErrc::kMalformed);
    }
    CHECK(sec::base64UrlDecode(std::string("Zm\0v", 4)).error().code() == SecurityErrc::kMalformed);
}

TEST_CASE("randomBytes: the requested length, different each call") {
    CHECK(sec::randomBytes(0).empty());
    const auto a = sec::randomBytes(32);
    const auto b = sec::randomBytes(32);
    CHECK(a.size() == 32);
    CHECK(a != b);
}
