#include "tests/support/test_pki.hpp"

#include <catch2/catch.hpp>

#include "tests/support/process.hpp"

namespace edge::test {
namespace {

void openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto result = runCommand(argv);
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
}

}  // namespace

TestPki::TestPki() {
    makeCa("ca");
    makeCa("rogue-ca");
    makeLeaf("server", "ca", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    makeLeaf("client", "ca", "edge-1", "extendedKeyUsage=clientAuth\n");
    makeLeaf("rogue-client", "rogue-ca", "edge-1", "extendedKeyUsage=clientAuth\n");
    makeLeaf("rogue-server", "rogue-ca", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
}

http::TlsServerOptions TestPki::server(const std::string& name) const {
    return {crt(name), key(name), crt("ca"), std::chrono::seconds(5)};
}

http::TlsClientOptions TestPki::client(const std::string& name, const std::string& ca) const {
    return {crt(ca), crt(name), key(name)};
}

void TestPki::makeCa(const std::string& name) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             key(name).string(), "-out", crt(name).string(), "-days", "2", "-subj", "/CN=" + name, "-addext",
             "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
}

void TestPki::makeLeaf(const std::string& name, const std::string& ca, const std::string& cn,
                       const std::string& extensions) {
    const auto csr = dir_ / (name + ".csr");
    const auto ext = dir_ / (name + ".ext");
    writeFile(ext, extensions + "basicConstraints=CA:FALSE\n");
    openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             key(name).string(), "-out", csr.string(), "-subj", "/CN=" + cn});
    openssl({"x509", "-req", "-in", csr.string(), "-CA", crt(ca).string(), "-CAkey", key(ca).string(), "-set_serial",
             std::to_string(++serial_), "-days", "2", "-out", crt(name).string(), "-extfile", ext.string()});
}

}  // namespace edge::test
