// Private key files: PKCS#8 PEM, mode 0600, replaced atomically.
#include <string.h>  // explicit_bzero

#include "security/crypto.hpp"
#include "shared/core/fs.hpp"

namespace edge::security {

namespace {

constexpr std::size_t kMaxKeyFileBytes = 64 * 1024;

// Wipes key material held in a std::string when it goes out of scope.
struct Wipe {
    std::string& text;
    ~Wipe() { explicit_bzero(text.data(), text.size()); }
};

}  // namespace

Result<PrivateKey> PrivateKey::loadFile(const std::filesystem::path& path) {
    auto pem = fs::readFile(path, kMaxKeyFileBytes);
    if (!pem) return fail(SecurityErrc::kKey, "load key: " + pem.error().what());
    const Wipe wipe{*pem};
    auto key = fromPem(*pem);
    if (!key) return fail(std::move(key.error()).wrap("load key " + path.string()));
    return key;
}

Status PrivateKey::saveFile(const std::filesystem::path& path) const {
    auto pem = toPem();
    if (!pem) return fail(std::move(pem.error()).wrap("save key " + path.string()));
    const Wipe wipe{*pem};
    auto st = fs::writeFileAtomic(path, *pem, 0600);
    if (!st) return fail(SecurityErrc::kKey, "save key: " + st.error().what());
    return {};
}

}  // namespace edge::security
