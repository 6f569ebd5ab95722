// Firmware install benchmark (issue 6): a 512 MiB image downloaded from the control plane's
// artifact store on loopback (the real ArtifactStore behind a BeastHttpServer, plain HTTP and
// mutual TLS) and installed into a slot file the way the Updater does it (stream while hashing,
// fsync; and with firmware.verify_readback, re-read and re-hash), next to the machine's own
// limits measured in the same run on the same file:
//   openssl dgst -sha256 FILE            (hashing speed)
//   dd if=FILE of=SLOT bs=1M conv=fsync  (write + fsync speed)
// Target: end-to-end install throughput (firmware.download: stream: download + hash + write +
// fsync into the slot) >= 80% of the slower of the two. Every figure is the median of
// the rounds (3 by default), each round measuring everything once, in the same order. Each
// step also shows its CPU time per MiB (user + system, this process and the commands it ran),
// and how much of it the artifact store's thread took.
// Usage: install_bench [MiB] [dir] [rounds]   (default 512 MiB in the build tree's bench folder)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "install_bench: %s\n", what.c_str());
    std::exit(1);
}

void check(const Status& st, const std::string& what) {
    if (!st) die(what + ": " + st.error().what());
}

void openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto result = test::runCommand(argv);
    if (result.exit_code != 0) die("openssl " + args.at(0) + ": " + result.err);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as the device has them.
struct Pki {
    explicit Pki(const std::filesystem::path& dir) : dir(dir) {
        std::filesystem::create_directories(dir);
        openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key("ca"), "-out", crt("ca"), "-days", "2", "-subj",
                 "/CN=bench-ca", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                 "keyUsage=critical,keyCertSign,cRLSign"});
        leaf("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        leaf("client", "edge-1", "extendedKeyUsage=clientAuth\n");
    }
    std::string crt(const std::string& name) const { return (dir / (name + ".crt")).string(); }
    std::string key(const std::string& name) const { return (dir / (name + ".key")).string(); }
    void leaf(const std::string& name, const std::string& cn, const std::string& extensions) {
        const auto ext = dir / (name + ".ext");
        std::ofstream(ext) << extensions << "basicConstraints=CA:FALSE\n";
        const auto csr = (dir / (name + ".csr")).string();
        openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key(name), "-out", csr, "-subj", "/CN=" + cn});
        openssl({"x509", "-req", "-in", csr, "-CA", crt("ca"), "-CAkey", key("ca"), "-set_serial",
                 std::to_string(++serial), "-days", "2", "-out", crt(name), "-extfile",
                 ext.string()});
    }
    std::filesystem::path dir;
    int serial = 1;
};

}  // namespace

int main(int argc, char** argv) {
    const std::uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 512;
    // Its own folder inside the one given: removed at the end, so nothing else there is touched.
    const std::filesystem::path dir =
        (argc > 2 && *argv[2] != '\0' ? std::filesystem::path(argv[2]) : std::filesystem::path(EDGE_TEST_BIN_DIR) / "../bench") /
        "install-bench";
    const int rounds = std::max(3, argc > 3 ? std::atoi(argv[3]) : 3);
    std::filesystem::create_directories(dir);
    const auto image = dir / "image.bin";
    const auto slot = dir / "slot-b.img";
    const auto dd_slot = dir / "dd-slot.img";
    const std::uint64_t size = mib << 20;

    // A random image (incompressible).
    {
        std::mt19937_64 rng(42);
        std::vector<std::uint64_t> block((1u << 20) / 8);
        std::ofstream out(image, std::ios::binary | std::ios::trunc);
        for (std::uint64_t i = 0; i < mib; ++i) {
            for (auto& w : block) w = rng();
            out.write(reinterpret_cast<const char*>(block.data()), 1 << 20);
        }
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

    // The control plane's artifact store on loopback, holding the image under its digest, over
    // plain HTTP and over HTTPS with client certificates (as edged fetches it).
    const Pki pki(dir / "pki");
    const auto store_dir = dir / "store";
    std::filesystem::create_directories(store_dir);
    const controlplane::ArtifactStore store(store_dir);
    if (auto added = store.add(image); !added || *added != digest) {
        die(std::string("artifact store: ") + (added ? "digest differs" : added.error().what()));
    }
    AsioEventLoop loop;
    http::BeastHttpServer server(loop, [&store](const http::Request& r) { return store.handle(r); });
    auto port = server.listen("127.0.0.1", 0);
    if (!port) die("listen: " + port.error().what());
    auto tls_port = server.listenTls(
        "127.0.0.1", 0, {pki.crt("server"), pki.key("server"), pki.crt("ca"), std::chrono::seconds(5)});
    if (!tls_port) die("listen with TLS: " + tls_port.error().what());
    std::thread serving([&loop] { loop.run(); });
    ::pthread_setname_np(serving.native_handle(), "store");
    const auto http_url = fmt::format("http://127.0.0.1:{}/v1/artifacts/{}", *port, digest);
    const auto https_url = fmt::format("https://127.0.0.1:{}/v1/artifacts/{}", *tls_port, digest);
    const http::TlsClientOptions client_tls{pki.crt("ca"), pki.crt("client"), pki.key("client")};
    const auto downloaded = dir / "download.img";

    std::vector<double> openssl_s, dd_s, install_s, readback_s, fetch_s, fetch_tls_s, e2e_s,
        stream_s, transport_s;
    // CPU seconds (user + system, this process and the commands it waited for) of each step,
    // by the step's wall-clock vector: what each MiB costs, whatever the disk did.
    std::map<const std::vector<double>*, std::vector<double>> cpu_s;
    const auto cpu = [] {
        double total = 0;
        for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
            rusage u{};
            ::getrusage(who, &u);
            total += static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                     static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
        }
        return total;
    };
    // The artifact store's share: the CPU time of the thread that serves (on a device the
    // store is another machine; here both ends share the same two cores).
    std::map<const std::vector<double>*, std::vector<double>> store_cpu_s;
    clockid_t store_clock{};
    if (::pthread_getcpuclockid(serving.native_handle(), &store_clock) != 0) die("pthread_getcpuclockid");
    const auto store_cpu = [&] {
        timespec ts{};
        ::clock_gettime(store_clock, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    };
    const auto timed = [&](std::vector<double>& into, const std::function<void()>& work) {
        const double cpu_before = cpu();
        const double store_before = store_cpu();
        const auto t = Steady::now();
        work();
        into.push_back(seconds(t));
        cpu_s[&into].push_back(cpu() - cpu_before);
        store_cpu_s[&into].push_back(store_cpu() - store_before);
    };
    // Removes what the step before left, then lets the file system settle: freeing 512 MiB
    // (with online discard, as this disk is mounted) costs the next journal commit, which the
    // next timed step's fsync would otherwise pay for.
    const auto fresh = [](const std::filesystem::path& p) {
        std::filesystem::remove(p);
        std::filesystem::remove(p.string() + ".part");
        ::sync();
    };
    for (int round = 0; round < rounds; ++round) {
        timed(openssl_s, [&] {
            auto dgst = test::runCommand({"openssl", "dgst", "-sha256", image.string()},
                                         std::chrono::minutes(5));
            if (dgst.exit_code != 0 || dgst.out.find(digest) == std::string::npos) {
                die("openssl dgst failed or disagrees: " + dgst.out);
            }
        });
        fresh(dd_slot);
        timed(dd_s, [&] {
            auto dd = test::runCommand({"dd", "if=" + image.string(), "of=" + dd_slot.string(),
                                        "bs=1M", "conv=fsync", "status=none"},
                                       std::chrono::minutes(5));
            if (dd.exit_code != 0) die("dd failed: " + dd.err);
        });
        fresh(downloaded);
        timed(fetch_s, [&] {
            check(edged::fetchArtifact(http_url, digest, size, downloaded, nullptr), "fetch (http)");
        });
        fresh(downloaded);
        timed(fetch_tls_s, [&] {
            check(edged::fetchArtifact(https_url, digest, size, downloaded, &client_tls),
                  "fetch (https)");
        });
        fresh(slot);
        timed(install_s, [&] { check(firmware::installImage(downloaded, slot, size, digest), "install"); });
        fresh(slot);
        timed(readback_s, [&] {
            firmware::InstallOptions paranoid;
            paranoid.read_back = true;
            check(firmware::installImage(image, slot, size, digest, paranoid), "install with read-back");
        });
        // The transport alone: HTTPS with client certificates, bytes counted and dropped.
        timed(transport_s, [&] {
            std::uint64_t got = 0;
            auto body = http::downloadTo(
                https_url, {}, &client_tls, {},
                [&got](std::string_view chunk) -> Status {
                    got += chunk.size();
                    return {};
                },
                size + 1);
            if (!body || got != size) die("https transport: " + (body ? "short body" : body.error().what()));
        });
        // What the device does for one update (firmware.download: stream): the image goes from
        // the store (HTTPS, client certificate) straight into the slot, hashed on the way, then
        // size and digest are checked and the slot fsynced.
        fresh(slot);
        timed(stream_s, [&] {
            auto into = firmware::SlotStream::open(slot, {});
            if (!into) die("stream: " + into.error().what());
            check(edged::fetchInto(https_url, size, (*into)->writer(), &client_tls), "stream: fetch");
            check((*into)->finish(size, digest, false), "stream: finish");
        });
        // firmware.download: cache: download into the artifact cache, then install from there.
        fresh(downloaded);
        fresh(slot);
        timed(e2e_s, [&] {
            check(edged::fetchArtifact(https_url, digest, size, downloaded, &client_tls),
                  "end to end: fetch");
            check(firmware::installImage(downloaded, slot, size, digest), "end to end: install");
        });
    }
    loop.post([&server] { server.stop(); });
    loop.stop();
    serving.join();

    const auto rate = [&](const std::vector<double>& s) { return static_cast<double>(mib) / median(s); };
    const double openssl_rate = rate(openssl_s);
    const double dd_rate = rate(dd_s);
    const double floor = std::min(openssl_rate, dd_rate);
    const char* slower = openssl_rate < dd_rate ? "openssl" : "dd";
    const auto cpu_per_mib = [&](const std::vector<double>& s) {
        return 1000.0 * median(cpu_s[&s]) / static_cast<double>(mib);
    };
    const auto line = [&](const char* what, const std::vector<double>& s) {
        const double r = rate(s);
        std::printf("%-58s %8.1f MiB/s  %4.0f%% of openssl  %4.0f%% of dd  %4.0f%% of the slower"
                    "  %5.2f ms CPU/MiB (store %4.2f)\n",
                    what, r, 100.0 * r / openssl_rate, 100.0 * r / dd_rate, 100.0 * r / floor,
                    cpu_per_mib(s), 1000.0 * median(store_cpu_s[&s]) / static_cast<double>(mib));
    };
    std::printf("%llu MiB image, medians of %d rounds (the slower limit: %s)\n",
                static_cast<unsigned long long>(mib), rounds, slower);
    std::printf("%-58s %8.1f MiB/s  %54.2f ms CPU/MiB\n", "openssl dgst -sha256 (machine limit: hashing)",
                openssl_rate, cpu_per_mib(openssl_s));
    std::printf("%-58s %8.1f MiB/s  %54.2f ms CPU/MiB\n", "dd bs=1M conv=fsync (machine limit: write + fsync)",
                dd_rate, cpu_per_mib(dd_s));
    std::printf("%-58s %8.1f MiB/s\n", "Sha256Hasher in process (one pass, page cache, once)",
                static_cast<double>(mib) / hasher_s);
    line("installImage: hash + write + fsync", install_s);
    line("installImage with verify_readback (+ re-read, re-hash)", readback_s);
    line("fetchArtifact http: download + hash + write + fsync", fetch_s);
    line("fetchArtifact https (mTLS): download + hash + write + fsync", fetch_tls_s);
    line("https transport alone (no disk, no hash)", transport_s);
    line("end to end, cache: https download to a file, then install", e2e_s);
    line("END TO END, stream: https into the slot, hash, fsync, check", stream_s);
    // The disk of a shared machine swings between rounds (dd from a few hundred MiB/s to almost
    // 2 GiB/s in one run), so each round is also compared with the limits of that same round.
    std::vector<double> paired;
    std::printf("stream / slower limit of the same round:");
    for (std::size_t r = 0; r < stream_s.size(); ++r) {
        const double limit = std::min(static_cast<double>(mib) / openssl_s[r], static_cast<double>(mib) / dd_s[r]);
        paired.push_back((static_cast<double>(mib) / stream_s[r]) / limit);
        std::printf(" %4.0f%%", 100.0 * paired.back());
    }
    std::printf("  (median %.0f%%)\n", 100.0 * median(paired));
    std::printf("target >= 80%% of the slower limit, end to end (stream): medians of rates %s, "
                "paired by round %s\n",
                rate(stream_s) >= 0.8 * floor ? "met" : "MISSED", median(paired) >= 0.8 ? "met" : "MISSED");
    const auto raw = [&](const char* what, const std::vector<double>& s) {
        std::printf("  %-14s", what);
        for (double x : s) std::printf(" %7.1f", static_cast<double>(mib) / x);
        std::printf("  MiB/s per round\n");
    };
    raw("openssl", openssl_s);
    raw("dd", dd_s);
    raw("install", install_s);
    raw("read-back", readback_s);
    raw("fetch http", fetch_s);
    raw("fetch https", fetch_tls_s);
    raw("end to end", e2e_s);
    raw("transport", transport_s);
    raw("stream", stream_s);
    std::filesystem::remove_all(dir);
    return 0;
}
