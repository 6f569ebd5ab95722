// OtaManager's plan across bundles and restarts: a real artifact store on a loopback port, the
// real fetcher, Updater, file-backed boot control and LMDB; only the reboot is recorded instead
// of done.
#include "edged/ota.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <thread>

#include "controlplane/artifact_store.hpp"
#include "firmware/file/file_boot_control.hpp"
#include "security/crypto.hpp"
#include "shared/core/clock.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/fakes/fake_rebooter.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/edged/artifact_servers.hpp"

using namespace edge;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string pattern(std::size_t n, unsigned seed) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * seed + i / 253) & 0xff);
    return out;
}

/// One device: its LMDB, boot environment, slots and downloads under dir; the daemon's parts are
/// made by run() and gone when it returns (a restart is two runs).
struct Device {
    fs::path dir;
    fs::path downloads;
    firmware::SlotPaths slots;
    std::string base_url;
    bool stream = true;

    Device(const fs::path& root, std::string url) : dir(root), downloads(root / "downloads"), base_url(std::move(url)) {
        slots = {root / "slot-a.img", root / "slot-b.img"};
        fs::create_directories(downloads);
        test::writeFile(slots.a, "factory image A");
        test::writeFile(slots.b, "junk");
        firmware::FileBootControl boot(root / "bootenv", root / "booted");
        REQUIRE(boot.fallBack(firmware::Slot::kB));
        REQUIRE(boot.simulateBoot());
    }

    using Settled = std::function<bool(const nlohmann::json&)>;
    struct Step {
        std::shared_ptr<const bundle::Bundle> bundle;  // applied before waiting; null: none
        Settled settled;
    };

    /// Runs the daemon's OTA part: start(applied), then each step in turn (its bundle applied,
    /// then its condition awaited), then stops. Returns the last status.
    nlohmann::json run(std::shared_ptr<const bundle::Bundle> applied, const Settled& settled,
                       const std::vector<Step>& later = {}) {
        auto db = store::LmdbStore::open(dir / "db");
        REQUIRE(db);
        SystemClock clock;
        AsioEventLoop loop;  // not run: status changes queue there unseen
        edged::OtaSettings settings;
        settings.artifact_base = base_url;
        settings.downloads_dir = downloads;
        settings.retry_interval = 100ms;
        settings.stream_firmware = stream;
        edged::OtaManager ota(loop, clock, **db, settings);
        firmware::FileBootControl boot(dir / "bootenv", dir / "booted");
        test::FakeRebooter rebooter;
        firmware::UpdaterConfig config;
        config.slots = slots;
        config.chunk_size = 64 * 1024;
        config.direct_io = false;
        auto updater = firmware::Updater::open(**db, boot, rebooter, clock, config, ota.updaterHooks());
        REQUIRE(updater);
        edged::HttpArtifactFetcher fetcher(std::nullopt);
        auto models = edged::ModelStore::open(dir / "models", **db, {clock, 2, {}, 30s, {}});
        REQUIRE(models);
        ota.setParts({&fetcher, &*updater, &*models});
        ota.start(std::move(applied), {});
        const auto wait = [&](const std::function<bool(const nlohmann::json&)>& done) {
            const bool ok = test::waitUntil([&] { return done(ota.statusJson()); }, 20s);
            INFO(ota.statusJson().dump());
            REQUIRE(ok);
        };
        wait(settled);
        for (const auto& step : later) {
            if (step.bundle) ota.bundleApplied(step.bundle);
            wait(step.settled);
        }
        ota.stop();
        return ota.statusJson();
    }
};

std::shared_ptr<bundle::Bundle> firmwareBundle(std::uint64_t version, const std::string& sha256, std::uint64_t size) {
    auto b = std::make_shared<bundle::Bundle>();
    b->device_id = "edge-1";
    b->version = version;
    b->artifacts.push_back(bundle::Artifact{bundle::ArtifactKind::kFirmware, "rootfs", "2.0", sha256, size,
                                            "/v1/artifacts/" + sha256});
    return b;
}

/// An image in a store of its own under dir.
struct StoredImage {
    StoredImage(const fs::path& dir, std::string bytes) : image(std::move(bytes)), store(dir / "store") {
        test::writeFile(dir / "image.bin", image);
        auto added = store.add(dir / "image.bin");
        REQUIRE(added);
        sha = *added;
    }
    std::string image;
    controlplane::ArtifactStore store;
    std::string sha;
};

std::string firmwareState(const nlohmann::json& status) {
    return status["firmware"].is_object() ? status["firmware"].value("state", "") : "";
}

}  // namespace

TEST_CASE("OtaManager: a failed firmware is not tried again for a re-signed bundle, only for new content",
          "[ota]") {
    test::TempDir dir;
    StoredImage stored(dir.path(), pattern(300000, 3));
    const auto& image = stored.image;
    const auto& sha = stored.sha;
    // The store's copy is damaged: same size, other bytes. Every attempt fails its digest.
    {
        auto damaged = image;
        damaged[1000] = static_cast<char>(damaged[1000] ^ 0x55);
        fs::permissions(dir / "store" / sha, fs::perms::owner_write, fs::perm_options::add);
        test::writeFile(dir / "store" / sha, damaged);
    }
    test::StoreRig rig(stored.store);
    Device dev(dir / "device", "http://127.0.0.1:" + std::to_string(rig.port));
    dev.stream = GENERATE(true, false);
    INFO("streamed: " << dev.stream);

    const auto v1 = firmwareBundle(1, sha, image.size());
    auto v2 = std::make_shared<bundle::Bundle>(*v1);  // the control plane re-signs before expiry
    v2->version = 2;
    v2->issued_at = 1000;
    auto v3 = std::make_shared<bundle::Bundle>(*v2);  // a commit changed what the device gets
    v3->version = 3;
    v3->data = {{"site", "hall-2"}};
    const auto failed_at = [](std::uint64_t version) {
        return [version](const nlohmann::json& s) {
            return s["bundle_version"] == version && s["domains"]["firmware"] == "failed";
        };
    };
    std::size_t requests_after_v2 = 0;
    const auto status = dev.run(v1, failed_at(1),
                                {{v2,
                                  [&](const nlohmann::json& s) {
                                      if (!failed_at(2)(s)) return false;
                                      std::this_thread::sleep_for(500ms);  // 5 retry intervals
                                      requests_after_v2 = rig.seenRanges().size();
                                      return true;
                                  }},
                                 {v3, [&](const nlohmann::json& s) {
                                      return failed_at(3)(s) && rig.seenRanges().size() > requests_after_v2;
                                  }}});
    INFO(status.dump());
    // v1: one download that failed its digest; v2: none; v3: one more.
    CHECK(requests_after_v2 == 1);
    CHECK(rig.seenRanges().size() == 2);
    // Streamed, the slot write failed (the update machine says so); cached, the download did,
    // before any update began.
    CHECK(firmwareState(status) == (dev.stream ? "failed" : "idle"));
    CHECK(status["firmware"]["last_failed_version"] == (dev.stream ? "2.0" : ""));
    CHECK_THAT(status["reasons"]["firmware"].get<std::string>(), Catch::Contains("sha256"));
    CHECK(test::readFile(dev.slots.a) == "factory image A");

    // A restart with v3 re-signed as v4 tries nothing either.
    auto v4 = std::make_shared<bundle::Bundle>(*v3);
    v4->version = 4;
    // Then `edgectl retry`: the same content with the next retry generation tries it once more.
    auto v5 = std::make_shared<bundle::Bundle>(*v4);
    v5->version = 5;
    v5->retry = 1;
    std::size_t requests_after_v4 = 0;
    const auto again = dev.run(
        v4,
        [&](const nlohmann::json& s) {
            if (!failed_at(4)(s)) return false;
            std::this_thread::sleep_for(500ms);
            requests_after_v4 = rig.seenRanges().size();
            return true;
        },
        {{v5, [&](const nlohmann::json& s) { return failed_at(5)(s) && rig.seenRanges().size() > 2; }}});
    CHECK(requests_after_v4 == 2);
    CHECK(again["domains"]["firmware"] == "failed");
    CHECK(rig.seenRanges().size() == 3);
}

TEST_CASE("OtaManager: a cached firmware download survives a restart: its .part goes on, a whole one is not fetched again",
          "[ota]") {
    test::TempDir dir;
    StoredImage stored(dir.path(), pattern(700000, 5));
    const auto& image = stored.image;
    const auto& sha = stored.sha;
    test::StoreRig rig(stored.store);
    Device dev(dir / "device", "http://127.0.0.1:" + std::to_string(rig.port));
    dev.stream = false;  // firmware.download: cache
    const auto stale_image = dev.downloads / ("firmware-" + security::sha256Hex("an older image"));
    const auto stale_model = dev.downloads / ("model-" + security::sha256Hex("a model no bundle wants") + ".part");
    const auto unrelated = dev.downloads / "notes.txt";
    test::writeFile(stale_image, "older image");
    test::writeFile(stale_model, "half a model");
    test::writeFile(unrelated, "not the daemon's");
    const auto rebooting = [](const nlohmann::json& s) { return firmwareState(s) == "rebooting"; };

    SECTION("an interrupted download continues from its .part") {
        test::writeFile(dev.downloads / ("firmware-" + sha + ".part"), image.substr(0, 250000));
        const auto status = dev.run(firmwareBundle(1, sha, image.size()), rebooting);
        INFO(status.dump());
        CHECK(rig.seenRanges() == std::vector<std::string>{"bytes=250000-"});
    }
    SECTION("a whole download is installed without a request") {
        test::writeFile(dev.downloads / ("firmware-" + sha), image);
        const auto status = dev.run(firmwareBundle(1, sha, image.size()), rebooting);
        INFO(status.dump());
        CHECK(rig.seenRanges().empty());
    }
    SECTION("a whole download with other bytes is fetched again") {
        auto other = image;
        other[5] = static_cast<char>(other[5] ^ 1);
        test::writeFile(dev.downloads / ("firmware-" + sha), other);
        const auto status = dev.run(firmwareBundle(1, sha, image.size()), rebooting);
        INFO(status.dump());
        CHECK(rig.seenRanges() == std::vector<std::string>{""});
    }
    CHECK(test::readFile(dev.slots.b).substr(0, image.size()) == image);
    // What no bundle asks for is gone; what is not the daemon's stays.
    CHECK_FALSE(fs::exists(stale_image));
    CHECK_FALSE(fs::exists(stale_model));
    CHECK(fs::exists(unrelated));
}

TEST_CASE("OtaManager: models switch only once every model's bytes are verified; the policies wait for them",
          "[ota]") {
    test::TempDir dir;
    StoredImage detector(dir.path() / "a", pattern(200000, 7));
    const auto tracker = pattern(150000, 9);
    const auto tracker_sha = security::sha256Hex(tracker);
    test::writeFile(dir / "tracker.onnx", tracker);
    test::StoreRig rig(detector.store);  // the tracker is not in the store yet: 404
    Device dev(dir / "device", "http://127.0.0.1:" + std::to_string(rig.port));

    auto b = std::make_shared<bundle::Bundle>();
    b->device_id = "edge-1";
    b->version = 1;
    b->policies["provenance.rego"] =
        "package provenance\nimport rego.v1\n"
        "deny contains msg if {\n  input.model.provenance.fairness < 0.8\n  msg := \"unfair\"\n}\n";
    const auto model = [](std::string name, const std::string& sha, std::size_t size) {
        bundle::Artifact a{bundle::ArtifactKind::kModel, std::move(name), "1", sha, size, "/v1/artifacts/" + sha};
        a.provenance = {{"fairness", 0.9}};
        return a;
    };
    b->artifacts = {model("detector", detector.sha, detector.image.size()), model("tracker", tracker_sha, tracker.size())};

    const auto modelEntry = [](const nlohmann::json& s, const std::string& name) {
        for (const auto& m : s.value("models", nlohmann::json::array())) {
            if (m.value("name", "") == name) return m;
        }
        return nlohmann::json();
    };
    nlohmann::json while_missing;
    const auto status = dev.run(
        b,
        [&](const nlohmann::json& s) {
            if (s["domains"]["models"] != "retrying") return false;
            while_missing = s;
            // Now the store gets the tracker; the next retry finds it.
            REQUIRE(detector.store.add(dir / "tracker.onnx"));
            return true;
        },
        {{nullptr, [](const nlohmann::json& s) { return s["domains"]["models"] == "done"; }}});

    INFO(while_missing.dump());
    // The detector's bytes were verified and staged, but nothing switched while the tracker's
    // download failed, and the bundle's policies waited.
    CHECK_THAT(while_missing["reasons"]["models"].get<std::string>(), Catch::Contains("404"));
    CHECK(while_missing["domains"]["policies"] == "pending");
    const auto waiting = modelEntry(while_missing, "detector");
    CHECK(waiting["active"].is_null());
    REQUIRE(waiting["staged"].size() == 1);
    CHECK(waiting["staged"][0]["sha256"] == detector.sha);

    INFO(status.dump());
    CHECK(status["domains"]["policies"] == "done");
    CHECK(modelEntry(status, "detector")["active"]["sha256"] == detector.sha);
    CHECK(modelEntry(status, "tracker")["active"]["sha256"] == tracker_sha);
    CHECK(test::readFile(dev.dir / "models/current/tracker") == tracker);
    // The staged detector was not downloaded again on the retry.
    CHECK(rig.requestsFor("/v1/artifacts/" + detector.sha) == 1);
    CHECK(rig.requestsFor("/v1/artifacts/" + tracker_sha) >= 2);
}

TEST_CASE("OtaManager: a download shows its bytes, rate and ETA in the status while it runs", "[ota]") {
    test::TempDir dir;
    const auto image = pattern(4u << 20, 11);
    const auto sha = security::sha256Hex(image);
    constexpr std::size_t kStall = (5u << 20) / 2;  // 2.5 MiB, then the server waits
    std::atomic<bool> go_on{false};
    // 256 KiB every 50 ms up to the stall, then the rest once the test lets it go.
    test::RawServer server([&](int fd, const std::string&, int) {
        test::RawServer::sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(image.size()) +
                                         "\r\nConnection: close\r\n\r\n");
        for (std::size_t at = 0; at < kStall; at += 256u << 10) {
            if (!test::RawServer::sendAll(fd, std::string_view(image).substr(at, 256u << 10))) return;
            std::this_thread::sleep_for(50ms);
        }
        for (int i = 0; i < 400 && !go_on; ++i) std::this_thread::sleep_for(25ms);
        test::RawServer::sendAll(fd, std::string_view(image).substr(kStall));
    });
    const auto base = server.url().substr(0, server.url().find("/artifact"));
    Device dev(dir / "device", base);
    auto b = firmwareBundle(1, sha, image.size());
    b->artifacts[0].url = "/artifact";

    nlohmann::json during;
    const auto status = dev.run(
        b,
        [&](const nlohmann::json& s) {
            // Progress comes about every MiB: the report at (or just past) 2 MiB, before the stall.
            if (!s["download"].is_object() || s["download"]["done"] < 2u << 20) return false;
            during = s;
            go_on = true;
            return true;
        },
        {{nullptr, [](const nlohmann::json& s) { return firmwareState(s) == "rebooting"; }}});
    INFO(during.dump());
    const auto& d = during["download"];
    CHECK(d["kind"] == "firmware");
    CHECK(d["name"] == "rootfs");
    CHECK(d["version"] == "2.0");
    CHECK(d["total"] == image.size());
    CHECK(d["resumed_from"] == 0);
    CHECK(during["domains"]["firmware"] == "downloading");
    const auto done = d["done"].get<std::uint64_t>();
    CHECK(done <= kStall);
    // Bytes past 2 MiB come after at least 8 sends 50 ms apart: at most done / 350 ms.
    const auto rate = d["rate_bytes_per_s"].get<std::uint64_t>();
    CHECK(rate > 0);
    CHECK(rate <= done * 1000 / 350);
    REQUIRE(d["eta_s"].is_number());
    const auto expected_eta = static_cast<double>(image.size() - done) / static_cast<double>(rate);
    CHECK(std::abs(d["eta_s"].get<double>() - expected_eta) <= 1.0);
    // What `edged status` prints of it.
    const auto text = edged::otaStatusText(during);
    CHECK_THAT(text, Catch::Contains("firmware downloading"));
    CHECK_THAT(text, Catch::Contains("download: firmware rootfs 2.0: " + std::to_string(done) + " / 4194304 bytes (" +
                                     std::to_string(done * 100 / image.size()) + "%), " + std::to_string(rate / 1024) +
                                     " KiB/s, ETA " + d["eta_s"].dump() + " s\n"));
    CHECK_THAT(text, Catch::Contains("firmware: installing, running the factory image, target 2.0"));
    INFO(status.dump());
    CHECK(status["download"].is_null());
    CHECK(test::readFile(dev.slots.b).substr(0, image.size()) == image);
}

TEST_CASE("OtaManager: an endless stream or a wrong declared size ends on slot A with the reason in the status",
          "[ota]") {
    test::TempDir dir;
    const auto image = pattern(300000, 13);
    const auto sha = security::sha256Hex(image);
    const bool endless = GENERATE(true, false);
    INFO("endless: " << endless);
    test::RawServer server([&](int fd, const std::string&, int) {
        if (endless) {
            // No length, and bytes for as long as anyone reads.
            test::RawServer::sendAll(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + image);
            const std::string more(64u << 10, 'x');
            for (int i = 0; i < 2000 && test::RawServer::sendAll(fd, more); ++i) {
            }
        } else {
            test::RawServer::sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(image.size() + 100) +
                                             "\r\nConnection: close\r\n\r\n" + image + std::string(100, 'x'));
        }
    });
    const auto base = server.url().substr(0, server.url().find("/artifact"));
    Device dev(dir / "device", base);
    dev.stream = GENERATE(true, false);
    INFO("streamed: " << dev.stream);
    auto b = firmwareBundle(1, sha, image.size());
    b->artifacts[0].url = "/artifact";
    const auto status = dev.run(b, [](const nlohmann::json& s) { return s["domains"]["firmware"] == "failed"; });
    INFO(status.dump());
    const auto reason = status["reasons"]["firmware"].get<std::string>();
    CHECK_THAT(reason, endless ? Catch::Contains("more than the declared 300000 bytes")
                               : Catch::Contains("declares 300100 bytes"));
    CHECK(server.heads().size() == 1);  // final: not tried again
    firmware::FileBootControl boot(dev.dir / "bootenv", dev.dir / "booted");
    const auto state = boot.state();
    REQUIRE(state);
    CHECK(state->primary() == firmware::Slot::kA);
    CHECK(state->attemptsLeft(firmware::Slot::kB) == 0);
    CHECK(test::readFile(dev.slots.a) == "factory image A");
    CHECK_FALSE(fs::exists(dev.downloads / ("firmware-" + sha)));
}

TEST_CASE("OtaManager: a firmware stopped by a bundle without firmware installs when its content comes back",
          "[ota]") {
    test::TempDir dir;
    const auto image = pattern(300000, 17);
    const auto sha = security::sha256Hex(image);
    std::atomic<bool> serve{false};
    test::RawServer server([&](int fd, const std::string&, int) {
        if (!serve) {
            test::RawServer::sendAll(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        test::RawServer::sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(image.size()) +
                                         "\r\nConnection: close\r\n\r\n" + image);
    });
    Device dev(dir / "device", server.url().substr(0, server.url().find("/artifact")));
    auto v1 = firmwareBundle(1, sha, image.size());
    v1->artifacts[0].url = "/artifact";
    auto v2 = std::make_shared<bundle::Bundle>(*v1);  // e.g. quarantine: no artifacts
    v2->version = 2;
    v2->artifacts.clear();
    auto v3 = std::make_shared<bundle::Bundle>(*v1);  // the content of v1 again
    v3->version = 3;
    const auto status = dev.run(
        v1, [](const nlohmann::json& s) { return s["domains"]["firmware"] == "retrying" && firmwareState(s) == "installing"; },
        {{v2,
          [&](const nlohmann::json& s) {
              if (s["domains"]["firmware"] != "none" || firmwareState(s) != "failed") return false;
              serve = true;
              return true;
          }},
         {v3, [](const nlohmann::json& s) { return firmwareState(s) == "rebooting"; }}});
    INFO(status.dump());
    CHECK(status["domains"]["firmware"] == "rebooting");
    CHECK(test::readFile(dev.slots.b).substr(0, image.size()) == image);
}

TEST_CASE("OtaManager: a whole zstd image a crash left behind is unpacked without a request", "[ota]") {
    test::TempDir dir;
    const auto image = pattern(400000, 19);
    test::writeFile(dir / "image.bin", image);
    auto packed = test::runCommand({"zstd", "-q", "-f", "-3", (dir / "image.bin").string(), "-o", (dir / "image.zst").string()});
    REQUIRE(packed.exit_code == 0);
    const auto zst = test::readFile(dir / "image.zst");
    controlplane::ArtifactStore store(dir / "store");
    test::StoreRig rig(store);  // empty: any request would be a 404
    Device dev(dir / "device", "http://127.0.0.1:" + std::to_string(rig.port));
    dev.stream = false;
    const auto sha = security::sha256Hex(image);
    auto b = firmwareBundle(1, sha, image.size());
    auto& fw = b->artifacts[0];
    fw.compression = "zstd";
    fw.transfer_sha256 = security::sha256Hex(zst);
    fw.transfer_size = zst.size();
    fw.url = "/v1/artifacts/" + fw.transfer_sha256;
    test::writeFile(dev.downloads / ("firmware-" + sha + ".zst"), zst);
    const auto status = dev.run(b, [](const nlohmann::json& s) { return firmwareState(s) == "rebooting"; });
    INFO(status.dump());
    CHECK(rig.seenRanges().empty());
    CHECK(test::readFile(dev.slots.b).substr(0, image.size()) == image);
    CHECK_FALSE(fs::exists(dev.downloads / ("firmware-" + sha + ".zst")));
}

TEST_CASE("OtaManager: a restart keeps the .part of a failed version that a newer bundle tries again", "[ota]") {
    test::TempDir dir;
    StoredImage stored(dir.path(), pattern(500000, 23));
    const auto& image = stored.image;
    const auto& sha = stored.sha;
    const auto in_store = dir / "store" / sha;
    fs::permissions(in_store, fs::perms::owner_write, fs::perm_options::add);
    auto damaged = image;
    damaged[7] = static_cast<char>(damaged[7] ^ 1);
    test::writeFile(in_store, damaged);
    test::StoreRig rig(stored.store);
    Device dev(dir / "device", "http://127.0.0.1:" + std::to_string(rig.port));
    // v1, streamed: the damaged copy fails in slot B, and 2.0 is the version that failed last.
    const auto v1 = firmwareBundle(1, sha, image.size());
    const auto failed = dev.run(v1, [](const nlohmann::json& s) { return firmwareState(s) == "failed"; });
    REQUIRE(failed["firmware"]["last_failed_version"] == "2.0");
    // The store is mended; v4 (other content) asks for 2.0 again, now cached, and the download
    // was cut by a power cut: its .part is there at the next start.
    test::writeFile(in_store, image);
    auto v4 = std::make_shared<bundle::Bundle>(*v1);
    v4->version = 4;
    v4->data = {{"retry", 1}};
    test::writeFile(dev.downloads / ("firmware-" + sha + ".part"), image.substr(0, 200000));
    dev.stream = false;
    const std::size_t before = rig.seenRanges().size();
    const auto status = dev.run(v4, [](const nlohmann::json& s) { return firmwareState(s) == "rebooting"; });
    INFO(status.dump());
    const auto ranges = rig.seenRanges();
    REQUIRE(ranges.size() == before + 1);
    CHECK(ranges.back() == "bytes=200000-");
    CHECK(test::readFile(dev.slots.b).substr(0, image.size()) == image);
}

TEST_CASE("OtaManager: a committed slot the bootloader left later fails the plan's firmware, for good", "[ota]") {
    test::TempDir dir;
    StoredImage stored(dir.path(), pattern(200000, 5));
    test::StoreRig rig(stored.store);
    Device dev(dir / "device", "http://127.0.0.1:" + std::to_string(rig.port));
    const auto v1 = firmwareBundle(1, stored.sha, stored.image.size());
    dev.run(v1, [](const nlohmann::json& s) { return s["domains"]["firmware"] == "rebooting"; });
    firmware::FileBootControl boot(dev.dir / "bootenv", dev.dir / "booted");
    REQUIRE(boot.simulateBoot() == firmware::Slot::kB);
    const auto committed = dev.run(v1, [](const nlohmann::json& s) { return firmwareState(s) == "committed"; });
    CHECK(committed["domains"]["firmware"] == "done");
    const auto downloads = rig.seenRanges().size();

    // Slot B now dies before edged runs, every time: the bootloader spends its attempts and
    // falls back to slot A.
    for (int i = 0; i < firmware::kDefaultMaxAttempts; ++i) REQUIRE(boot.simulateBoot() == firmware::Slot::kB);
    REQUIRE(boot.simulateBoot() == firmware::Slot::kA);
    const auto status = dev.run(v1, [](const nlohmann::json& s) { return firmwareState(s) == "failed"; });
    INFO(status.dump());
    CHECK(status["domains"]["firmware"] == "failed");
    CHECK_THAT(status["reasons"]["firmware"].get<std::string>(), Catch::Contains("slot B stopped booting"));
    CHECK(status["firmware"]["last_failed_version"] == "2.0");
    CHECK(status["firmware"]["current_version"] == "");  // what slot A runs is not known
    // The same bundle does not try the version again, across a restart too.
    const auto again = dev.run(v1, [](const nlohmann::json& s) { return s["domains"]["firmware"] == "failed"; });
    std::this_thread::sleep_for(300ms);
    CHECK(rig.seenRanges().size() == downloads);
    CHECK(firmwareState(again) == "failed");
}
