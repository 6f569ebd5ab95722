// The control plane's artifact store end to end: the real controlplane process serving a
// content-addressed directory to devices over mutual TLS, artifacts added with its CLI.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "security/crypto.hpp"
#include "shared/http/http.hpp"
#include "tests/integration/fleet_harness.hpp"
#include "tests/support/ports.hpp"
#include "tests/support/test_pki.hpp"

using namespace edge;
using namespace std::chrono_literals;

namespace {

/// GET through downloadTo; the body, or the error text.
std::string fetch(const std::string& url, const http::TlsClientOptions* tls, const http::Headers& headers = {},
                  int* status = nullptr) {
    std::string body;
    auto result = http::downloadTo(url, headers, tls, {std::chrono::seconds(5)},
                                   [&](std::string_view chunk) -> Status {
                                       body.append(chunk);
                                       return {};
                                   },
                                   64u << 20);
    if (!result) return "error: " + result.error().what();
    if (status != nullptr) *status = result->status;
    return body;
}

}  // namespace

TEST_CASE("Artifacts: the control plane serves what artifact-add stored, over mutual TLS only",
          "[integration]") {
    test::FleetHarness fleet;
    test::TestPki pki;
    const int port = fleet.enableArtifactStore(pki);
    const auto config = fleet.dir / "controlplane.yaml";
    fleet.startControlPlane();

    std::string image(3u << 20, '\0');
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<char>((i * 7 + i / 4099) & 0xff);
    test::writeFile(fleet.dir / "fw-2.0.img", image);
    auto added = test::runCommand({test::binary("controlplane").string(), "artifact-add", "-c", config.string(),
                                   (fleet.dir / "fw-2.0.img").string()});
    INFO(added.err);
    REQUIRE(added.exit_code == 0);
    const auto digest = security::sha256Hex(image);
    CHECK_THAT(added.out, Catch::Contains("sha256 " + digest) && Catch::Contains("/v1/artifacts/" + digest));
    CHECK(test::readFile(fleet.dir / "state/cp/artifacts" / digest) == image);

    const auto url = fmt::format("https://127.0.0.1:{}/v1/artifacts/{}", port, digest);
    const auto client = pki.client();
    CHECK(fetch(url, &client) == image);
    // Range: a device resuming an interrupted download.
    int status = 0;
    CHECK(fetch(url, &client, {{"Range", "bytes=1000000-"}}, &status) == image.substr(1000000));
    CHECK(status == 206);
    // No certificate, or one from another CA: refused at the handshake.
    const http::TlsClientOptions anonymous{pki.crt("ca"), {}, {}};
    CHECK_THAT(fetch(url, &anonymous), Catch::StartsWith("error:"));
    const auto rogue = pki.client("rogue-client");
    CHECK_THAT(fetch(url, &rogue), Catch::StartsWith("error:"));
    // Only digests, and only the artifact store, on the device-facing port.
    status = 0;
    (void)fetch(fmt::format("https://127.0.0.1:{}/v1/artifacts/..%2Fstate", port), &client, {}, &status);
    CHECK((status == 400 || status == 404));
    (void)fetch(fmt::format("https://127.0.0.1:{}/v1/devices", port), &client, {}, &status);
    CHECK(status == 404);
    // The operators' loopback API serves the same store.
    auto local = http::request("GET", fleet.server() + "/v1/artifacts/" + digest);
    REQUIRE(local);
    CHECK(local->status == 200);
    CHECK(local->body == image);
}
