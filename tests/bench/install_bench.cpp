// Firmware install benchmark (issue 6): a 512 MiB image installed into a slot file the way the
// Updater does it (stream while hashing, fsync; and with firmware.verify_readback, re-read and
// re-hash), next to the machine's own limits measured in the same run on the same file:
//   openssl dgst -sha256 FILE            (hashing speed)
//   dd if=FILE of=SLOT bs=1M conv=fsync  (write + fsync speed)
// Target: install throughput >= 80% of the slower of the two. Medians of 3 runs each.
// Usage: install_bench [MiB] [dir]   (default 512 MiB in the build tree's bench folder)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "controlplane/artifact_store.hpp"
#include "edged/artifact_fetcher.hpp"
#include "firmware/slot_writer.hpp"
#include "shared/http/beast/beast_server.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "security/crypto.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace edge;
using Steady = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double seconds(Steady::time_point since) {
    return std::chrono::duration<double>(Steady::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
    const std::uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 512;
    const std::filesystem::path dir = argc > 2 ? argv[2] : std::filesystem::path(EDGE_TEST_BIN_DIR) / "../bench/install-bench";
    std::filesystem::create_directories(dir);
    const auto image = dir / "image.bin";
    const auto slot = dir / "slot-b.img";
    const auto dd_slot = dir / "dd-slot.img";
    const std::uint64_t size = mib << 20;

    // A random image (incompressible), hashed once to know its digest.
    {
        std::mt19937_64 rng(42);
        std::vector<std::uint64_t> block((1u << 20) / 8);
        std::ofstream out(image, std::ios::binary | std::ios::trunc);
        security::Sha256Hasher hasher;
        for (std::uint64_t i = 0; i < mib; ++i) {
            for (auto& w : block) w = rng();
            const std::string_view bytes(reinterpret_cast<const char*>(block.data()), 1u << 20);
            out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
            hasher.update(bytes);
        }
        out.close();
        (void)hasher;
    }
    security::Sha256Hasher hasher;
    const auto hash_start = Steady::now();
    {
        std::ifstream in(image, std::ios::binary);
        std::string buf(1u << 20, '\0');
        while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
            hasher.update(std::string_view(buf.data(), static_cast<std::size_t>(in.gcount())));
        }
    }
    const auto digest = hasher.finishHex();
    const double hasher_s = seconds(hash_start);

    // The control plane's artifact store on loopback (plain HTTP here: the bench measures the
    // fetch path, not TLS), holding the image under its digest.
    const auto store_dir = dir / "store";
    std::filesystem::create_directories(store_dir);
    const controlplane::ArtifactStore store(store_dir);
    if (auto added = store.add(image); !added || *added != digest) {
        std::fprintf(stderr, "artifact store: %s\n", added ? "digest differs" : added.error().what().c_str());
        return 1;
    }
    AsioEventLoop loop;
    http::BeastHttpServer server(loop, [&store](const http::Request& r) { return store.handle(r); });
    auto port = server.listen("127.0.0.1", 0);
    if (!port) return 1;
    std::thread serving([&loop] { loop.run(); });
    const auto url = fmt::format("http://127.0.0.1:{}/v1/artifacts/{}", *port, digest);
    const auto downloaded = dir / "download.img";

    std::vector<double> openssl_s, dd_s, install_s, readback_s, fetch_s;
    for (int run = 0; run < 3; ++run) {
        auto t = Steady::now();
        auto dgst = test::runCommand({"openssl", "dgst", "-sha256", image.string()}, std::chrono::minutes(5));
        openssl_s.push_back(seconds(t));
        if (dgst.exit_code != 0 || dgst.out.find(digest) == std::string::npos) {
            std::fprintf(stderr, "openssl dgst failed or disagrees: %s\n", dgst.out.c_str());
            return 1;
        }
        std::filesystem::remove(dd_slot);
        t = Steady::now();
        auto dd = test::runCommand({"dd", "if=" + image.string(), "of=" + dd_slot.string(), "bs=1M", "conv=fsync",
                                    "status=none"},
                                   std::chrono::minutes(5));
        dd_s.push_back(seconds(t));
        if (dd.exit_code != 0) {
            std::fprintf(stderr, "dd failed: %s\n", dd.err.c_str());
            return 1;
        }
        std::filesystem::remove(downloaded);
        t = Steady::now();
        if (auto fetched = edged::fetchArtifact(url, digest, size, downloaded, nullptr); !fetched) {
            std::fprintf(stderr, "fetch failed: %s\n", fetched.error().what().c_str());
            return 1;
        }
        fetch_s.push_back(seconds(t));
        std::filesystem::remove(slot);
        t = Steady::now();
        auto st = firmware::installImage(downloaded, slot, size, digest);
        install_s.push_back(seconds(t));
        if (!st) {
            std::fprintf(stderr, "install failed: %s\n", st.error().what().c_str());
            return 1;
        }
        std::filesystem::remove(slot);
        firmware::InstallOptions paranoid;
        paranoid.read_back = true;
        t = Steady::now();
        st = firmware::installImage(image, slot, size, digest, paranoid);
        readback_s.push_back(seconds(t));
        if (!st) {
            std::fprintf(stderr, "install with read-back failed: %s\n", st.error().what().c_str());
            return 1;
        }
    }
    const auto mbps = [&](double s) { return static_cast<double>(mib) / s; };
    const double openssl_rate = mbps(median(openssl_s));
    const double dd_rate = mbps(median(dd_s));
    const double install_rate = mbps(median(install_s));
    const double floor = std::min(openssl_rate, dd_rate);
    loop.post([&server] { server.stop(); });
    loop.stop();
    serving.join();
    const double fetch_rate = mbps(median(fetch_s));
    std::printf("%llu MiB image, medians of 3 runs\n", static_cast<unsigned long long>(mib));
    std::printf("openssl dgst -sha256          %8.1f MiB/s\n", openssl_rate);
    std::printf("Sha256Hasher in process       %8.1f MiB/s (one pass, page cache)\n", mbps(hasher_s));
    std::printf("dd bs=1M conv=fsync           %8.1f MiB/s\n", dd_rate);
    std::printf("installImage (hash while writing, fsync)    %8.1f MiB/s = %.0f%% of the slower (%s)\n",
                install_rate, 100.0 * install_rate / floor, openssl_rate < dd_rate ? "openssl" : "dd");
    std::printf("  with verify_readback (re-read and re-hash) %8.1f MiB/s = %.0f%%\n", mbps(median(readback_s)),
                100.0 * mbps(median(readback_s)) / floor);
    std::printf("fetchArtifact from the artifact store (download, hash, write, fsync, rename) %8.1f MiB/s = %.0f%%\n",
                fetch_rate, 100.0 * fetch_rate / floor);
    const double both = static_cast<double>(mib) / (median(fetch_s) + median(install_s));
    std::printf("download then install, end to end                 %8.1f MiB/s = %.0f%%\n", both, 100.0 * both / floor);
    std::printf("target >= 80%% (install step): %s\n", install_rate >= 0.8 * floor ? "met" : "MISSED");
    std::filesystem::remove_all(dir);
    return 0;
}
