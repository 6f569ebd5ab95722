#pragma once
// A throwaway PKI for TLS tests, made with the openssl CLI in a temp dir: a CA with a server
// certificate for 127.0.0.1 (SAN IP) and a client certificate CN=edge-1, and a second, untrusted
// CA ("rogue-ca") with its own client and server certificates.
#include <filesystem>
#include <string>

#include "shared/http/http.hpp"
#include "tests/support/temp_dir.hpp"

namespace edge::test {

class TestPki {
public:
    TestPki();
    [[nodiscard]] std::filesystem::path crt(const std::string& name) const { return dir_ / (name + ".crt"); }
    [[nodiscard]] std::filesystem::path key(const std::string& name) const { return dir_ / (name + ".key"); }
    /// The folder holding the files (for paths to files that do not exist).
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
    /// Server options: the named certificate, clients verified against "ca".
    [[nodiscard]] http::TlsServerOptions server(const std::string& name = "server") const;
    /// Client options: the named certificate, the server verified against ca.
    [[nodiscard]] http::TlsClientOptions client(const std::string& name = "client",
                                                const std::string& ca = "ca") const;

private:
    void makeCa(const std::string& name);
    void makeLeaf(const std::string& name, const std::string& ca, const std::string& cn,
                  const std::string& extensions);

    TempDir dir_;
    int serial_ = 1;
};

}  // namespace edge::test
