// OtaManager's plan across bundles and restarts: a real artifact store on a loopback port, the
// real fetcher, Updater, file-backed boot control and LMDB; only the reboot is recorded instead
// of done.
#include "edged/ota.hpp"

#include <catch2/catch.hpp>
#include <chrono>
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
#include "tests/unit/edged/store_rig.hpp"

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

    /// Runs the daemon's OTA part: start(applied), then each of `later` in turn once the plan
    /// before it settled (settled(status) says when), then stops. Returns the last status.
    nlohmann::json run(std::shared_ptr<const bundle::Bundle> applied,
                       const std::function<bool(const nlohmann::json&)>& settled,
                       const std::vector<std::pair<std::shared_ptr<const bundle::Bundle>,
                                                   std::function<bool(const nlohmann::json&)>>>& later = {}) {
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
        ota.setParts({&fetcher, &*updater, nullptr});
        ota.start(std::move(applied), {});
        const auto wait = [&](const std::function<bool(const nlohmann::json&)>& done) {
            const bool ok = test::waitUntil([&] { return done(ota.statusJson()); }, 20s);
            INFO(ota.statusJson().dump());
            REQUIRE(ok);
        };
        wait(settled);
        for (const auto& [bundle, done] : later) {
            ota.bundleApplied(bundle);
            wait(done);
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
    const auto again = dev.run(v4, [&](const nlohmann::json& s) {
        if (!failed_at(4)(s)) return false;
        std::this_thread::sleep_for(500ms);
        return true;
    });
    CHECK(again["domains"]["firmware"] == "failed");
    CHECK(rig.seenRanges().size() == 2);
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
