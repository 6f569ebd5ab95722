#include "edged/model_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "security/crypto.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;
using edge::edged::ActivationOutcome;
using edge::edged::ModelErrc;
using edge::edged::ModelStore;
using edge::edged::ModelStoreOptions;
using edge::edged::ModelVersion;
namespace stdfs = std::filesystem;

namespace {

template <class R>
std::string what(const R& r) {
    return r ? std::string() : r.error().what();
}

/// The error code of a failed result; an empty code when it succeeded.
template <class R>
std::error_code codeOf(const R& r) {
    return r ? std::error_code() : r.error().code();
}

/// A model file as the fetcher leaves it: verified, in the state dir's download folder.
struct Incoming {
    ModelVersion version;
    std::string bytes;
    stdfs::path file;
};

Incoming makeModel(const stdfs::path& root, const std::string& name, const std::string& version,
                   const std::string& bytes) {
    Incoming in;
    in.bytes = bytes;
    in.version.name = name;
    in.version.version = version;
    in.version.sha256 = security::sha256Hex(bytes);
    in.version.size = bytes.size();
    in.version.provenance = {{"source", "registry.example/" + name}, {"fairness", 0.91}};
    in.file = root / "downloads" / (name + "-" + version);
    test::writeFile(in.file, bytes);
    return in;
}

/// A real LMDB store and a model store over it, reopened on demand like a restarted daemon.
struct Rig {
    explicit Rig(const stdfs::path& root, std::size_t keep = 2,
                 std::vector<std::string> command = {}, const Clock* clock_in = nullptr)
        : root(root), clock(clock_in != nullptr ? clock_in : &fake), keep(keep),
          command(std::move(command)) {
        reopen();
    }

    void reopen() {
        models.reset();
        db.reset();
        auto opened = store::LmdbStore::open(root / "db");
        INFO(what(opened));
        REQUIRE(opened);
        db = std::move(*opened);
        ModelStoreOptions options{.clock = *clock, .keep = keep, .readiness_command = command};
        options.readiness_timeout = std::chrono::milliseconds(500);
        auto store = ModelStore::open(root / "models", *db, options);
        INFO(what(store));
        REQUIRE(store);
        models.emplace(std::move(*store));
    }

    Incoming stage(const std::string& name, const std::string& version) {
        auto in = makeModel(root, name, version, "weights of " + name + " " + version);
        auto st = models->stage(in.version, in.file);
        INFO(what(st));
        REQUIRE(st);
        return in;
    }

    ActivationOutcome activate(const Incoming& in, const edged::ReadinessCheck& check = {}) {
        auto out = models->activate(in.version.name, in.version.sha256, check);
        INFO(what(out));
        REQUIRE(out);
        return *out;
    }

    stdfs::path link(const std::string& name) const { return root / "models" / "current" / name; }
    stdfs::path blob(const Incoming& in) const {
        return root / "models" / "blobs" / in.version.sha256;
    }
    std::string linkTarget(const std::string& name) const {
        std::error_code ec;
        auto target = stdfs::read_symlink(link(name), ec);
        return ec ? std::string() : target.string();
    }
    std::set<std::string> entries(const std::string& sub) const {
        std::set<std::string> out;
        for (const auto& e : stdfs::directory_iterator(root / "models" / sub)) {
            out.insert(e.path().filename().string());
        }
        return out;
    }
    nlohmann::json model(const std::string& name) const {
        const auto listed = models->list();
        for (const auto& m : listed["models"]) {
            if (m["name"] == name) return m;
        }
        return nullptr;
    }

    stdfs::path root;
    test::FakeClock fake;
    const Clock* clock;
    std::size_t keep;
    std::vector<std::string> command;
    std::unique_ptr<store::LmdbStore> db;
    std::optional<ModelStore> models;
};

std::string linkTo(const Incoming& in) { return "../blobs/" + in.version.sha256; }

Status failWith(std::string text) { return fail(ModelErrc::kReadiness, std::move(text)); }

}  // namespace

TEST_CASE("ModelStore: a staged version activates and current/<name> links to its blob",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto v1 = rig.stage("detector", "1.0");

    // Staged: the file moved into blobs/ read-only, the download is gone, nothing is active.
    CHECK_FALSE(stdfs::exists(v1.file));
    struct stat st {};
    REQUIRE(::stat(rig.blob(v1).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0444);
    CHECK(test::readFile(rig.blob(v1)) == v1.bytes);
    CHECK_FALSE(stdfs::is_symlink(rig.link("detector")));
    auto listed = rig.model("detector");
    CHECK(listed["active"].is_null());
    REQUIRE(listed["staged"].size() == 1);
    CHECK(listed["staged"][0]["sha256"] == v1.version.sha256);

    const auto out = rig.activate(v1);
    CHECK_FALSE(out.rolled_back);
    REQUIRE(out.active);
    CHECK(out.active->version == "1.0");
    CHECK(out.active->activated_at == rig.fake.unixMillis());

    CHECK(rig.linkTarget("detector") == linkTo(v1));
    CHECK(test::readFile(rig.link("detector")) == v1.bytes);
    listed = rig.model("detector");
    const auto& active = listed["active"];
    CHECK(active["version"] == "1.0");
    CHECK(active["sha256"] == v1.version.sha256);
    CHECK(active["size"] == v1.bytes.size());
    CHECK(active["path"] == rig.link("detector").string());
    CHECK(active["blob"] == rig.blob(v1).string());
    CHECK(active["provenance"]["fairness"] == 0.91);
    CHECK(active["activated_at"] == rig.fake.unixMillis());
    CHECK(listed["staged"].empty());
    CHECK(listed["previous"].empty());
    CHECK(listed["last_error"].is_null());

    auto got = rig.models->active("detector");
    REQUIRE(got);
    REQUIRE(*got);
    CHECK((*got)->sha256 == v1.version.sha256);
    auto none = rig.models->active("unknown");
    REQUIRE(none);
    CHECK_FALSE(*none);

    // Activating the active version again changes nothing.
    const auto again = rig.activate(v1);
    CHECK_FALSE(again.rolled_back);
    CHECK(rig.linkTarget("detector") == linkTo(v1));
}

TEST_CASE("ModelStore: a second version activates and the first becomes previous",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto v1 = rig.stage("detector", "1.0");
    rig.activate(v1);
    rig.fake.advance(std::chrono::seconds(5));
    auto v2 = rig.stage("detector", "2.0");
    const auto out = rig.activate(v2);
    CHECK_FALSE(out.rolled_back);

    CHECK(rig.linkTarget("detector") == linkTo(v2));
    CHECK(test::readFile(rig.link("detector")) == v2.bytes);
    const auto listed = rig.model("detector");
    CHECK(listed["active"]["version"] == "2.0");
    REQUIRE(listed["previous"].size() == 1);
    CHECK(listed["previous"][0]["version"] == "1.0");
    CHECK(listed["previous"][0]["blob"] == rig.blob(v1).string());
    CHECK(stdfs::exists(rig.blob(v1)));  // kept for rollback
    CHECK(rig.entries("current") == std::set<std::string>{"detector"});
}

TEST_CASE("ModelStore: keep=2 trims previous versions and gc deletes their blobs",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path(), 2);
    std::vector<Incoming> versions;
    for (int i = 1; i <= 5; ++i) {
        versions.push_back(rig.stage("detector", std::to_string(i) + ".0"));
        rig.activate(versions.back());
    }
    const auto listed = rig.model("detector");
    CHECK(listed["active"]["version"] == "5.0");
    REQUIRE(listed["previous"].size() == 2);
    CHECK(listed["previous"][0]["version"] == "4.0");
    CHECK(listed["previous"][1]["version"] == "3.0");
    CHECK(rig.entries("blobs") == std::set<std::string>{versions[2].version.sha256,
                                                        versions[3].version.sha256,
                                                        versions[4].version.sha256});
    // A blob shared by another model's record stays.
    auto other = makeModel(tmp.path(), "classifier", "1.0", versions[4].bytes);
    REQUIRE(rig.models->stage(other.version, other.file));
    REQUIRE(rig.models->activate("classifier", other.version.sha256, {}));
    CHECK(rig.linkTarget("classifier") == linkTo(versions[4]));
}

TEST_CASE("ModelStore: a failing readiness check rolls back to the old link with the reason",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto v1 = rig.stage("detector", "1.0");
    rig.activate(v1);
    auto v2 = rig.stage("detector", "2.0");

    std::string seen_target;
    stdfs::path seen_path;
    const auto out = rig.activate(v2, [&](const ModelVersion& m, const stdfs::path& path) {
        CHECK(m.version == "2.0");
        seen_path = path;
        seen_target = rig.linkTarget("detector");  // the new model is in place during the check
        return failWith("model does not load: bad tensor shape");
    });
    CHECK(seen_path == rig.link("detector"));
    CHECK(seen_target == linkTo(v2));

    CHECK(out.rolled_back);
    CHECK_THAT(out.reason, Catch::Contains("bad tensor shape"));
    REQUIRE(out.active);
    CHECK(out.active->version == "1.0");
    CHECK(rig.linkTarget("detector") == linkTo(v1));
    const auto listed = rig.model("detector");
    CHECK(listed["active"]["version"] == "1.0");
    CHECK(listed["previous"].empty());
    CHECK(listed["staged"].empty());  // the failed version is dropped...
    CHECK_FALSE(stdfs::exists(rig.blob(v2)));  // ...with its blob
    CHECK(listed["last_error"]["version"] == "2.0");
    CHECK(listed["last_error"]["sha256"] == v2.version.sha256);
    CHECK_THAT(listed["last_error"]["reason"].get<std::string>(),
               Catch::Contains("bad tensor shape"));
    CHECK(listed["last_error"]["at"] == rig.fake.unixMillis());
    CHECK(rig.entries("current") == std::set<std::string>{"detector"});

    SECTION("the first version failing leaves no link at all") {
        auto c1 = rig.stage("classifier", "1.0");
        const auto first = rig.activate(c1, [](const ModelVersion&, const stdfs::path&) -> Status {
            throw std::runtime_error("runtime crashed");
        });
        CHECK(first.rolled_back);
        CHECK_THAT(first.reason, Catch::Contains("runtime crashed"));
        CHECK_FALSE(first.active);
        CHECK_FALSE(stdfs::is_symlink(rig.link("classifier")));
        CHECK(rig.model("classifier")["active"].is_null());
    }
}

TEST_CASE("ModelStore: the readiness command gets the model path and decides, with a timeout",
          "[edged][models]") {
    test::TempDir tmp;
    SystemClock clock;  // runCommand's deadline needs a clock that moves

    SECTION("a command that checks the file at the path passes") {
        // The path comes as the last argument ($1 of the script).
        Rig rig(tmp.path(), 2,
                {"sh", "-c", "test -L \"$1\" && test \"$(cat \"$1\")\" = \"weights of m 1.0\"",
                 "check"},
                &clock);
        auto v1 = rig.stage("m", "1.0");
        const auto out = rig.activate(v1);
        CHECK_FALSE(out.rolled_back);
        CHECK(rig.linkTarget("m") == linkTo(v1));
        CHECK(rig.model("m")["active"]["version"] == "1.0");
    }
    SECTION("/bin/false rolls back") {
        Rig rig(tmp.path(), 2, {"/bin/false"}, &clock);
        auto v1 = rig.stage("m", "1.0");
        const auto out = rig.activate(v1);
        CHECK(out.rolled_back);
        CHECK_THAT(out.reason, Catch::Contains("readiness command") && Catch::Contains("false"));
        CHECK_FALSE(stdfs::is_symlink(rig.link("m")));
        CHECK_THAT(rig.model("m")["last_error"]["reason"].get<std::string>(),
                   Catch::Contains("readiness command"));
    }
    SECTION("a command that sleeps past the timeout is killed and rolls back") {
        Rig rig(tmp.path(), 2, {"true"}, &clock);
        auto v1 = rig.stage("m", "1.0");
        rig.activate(v1);
        rig.command = {"sh", "-c", "sleep 20", "sleeper"};
        rig.reopen();
        auto v2 = rig.stage("m", "2.0");
        const auto t0 = std::chrono::steady_clock::now();
        const auto out = rig.activate(v2);
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
        CHECK(out.rolled_back);
        CHECK_THAT(out.reason, Catch::Contains("timed out"));
        CHECK(rig.linkTarget("m") == linkTo(v1));
        CHECK(rig.model("m")["active"]["version"] == "1.0");
    }
}

TEST_CASE("ModelStore: bad names and digests are refused before the filesystem is touched",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto good = makeModel(tmp.path(), "ok", "1.0", "bytes");
    const auto sha = good.version.sha256;
    std::string upper = sha;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));

    for (const std::string& name : std::vector<std::string>{
             "../x", "a/b", ".", "..", "", ".hidden", std::string(65, 'a'), "sp ace", "x\n"}) {
        CAPTURE(name);
        auto m = good.version;
        m.name = name;
        auto st = rig.models->stage(m, good.file);
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == ModelErrc::kInvalidArgument);
        auto act = rig.models->activate(name, sha, {});
        REQUIRE_FALSE(act);
        CHECK(act.error().code() == ModelErrc::kInvalidArgument);
        CHECK(codeOf(rig.models->reject(m, "no")) == ModelErrc::kInvalidArgument);
        CHECK(codeOf(rig.models->rollback(name, "no")) == ModelErrc::kInvalidArgument);
        CHECK(codeOf(rig.models->active(name)) == ModelErrc::kInvalidArgument);
    }
    for (const std::string& digest :
         std::vector<std::string>{upper, sha.substr(0, 63), sha + "0", "../" + sha.substr(3),
                                  std::string(64, 'g')}) {
        CAPTURE(digest);
        auto m = good.version;
        m.sha256 = digest;
        CHECK(codeOf(rig.models->stage(m, good.file)) == ModelErrc::kInvalidArgument);
        CHECK(codeOf(rig.models->activate("ok", digest, {})) == ModelErrc::kInvalidArgument);
    }
    auto m = good.version;
    m.version = "";
    CHECK(codeOf(rig.models->stage(m, good.file)) == ModelErrc::kInvalidArgument);

    CHECK(stdfs::exists(good.file));
    CHECK(rig.entries("blobs").empty());
    CHECK(rig.entries("current").empty());
    CHECK_FALSE(stdfs::exists(tmp.path() / "models" / "x"));
    CHECK_FALSE(stdfs::exists(tmp.path() / "x"));
    CHECK(rig.models->list()["models"].empty());
}

TEST_CASE("ModelStore: a size mismatch at stage is refused and nothing changes",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto v1 = rig.stage("detector", "1.0");
    rig.activate(v1);
    const auto before = rig.models->list();

    auto v2 = makeModel(tmp.path(), "detector", "2.0", "twelve bytes");
    auto declared = v2.version;
    declared.size = 13;
    auto st = rig.models->stage(declared, v2.file);
    REQUIRE_FALSE(st);
    CHECK(st.error().code() == ModelErrc::kSize);
    CHECK_THAT(st.error().what(), Catch::Contains("12 bytes"));
    CHECK(stdfs::exists(v2.file));
    CHECK_FALSE(stdfs::exists(rig.blob(v2)));
    CHECK(rig.models->list() == before);

    // Activating something never staged is refused too.
    auto act = rig.models->activate("detector", v2.version.sha256, {});
    REQUIRE_FALSE(act);
    CHECK(act.error().code() == ModelErrc::kNotStaged);
    CHECK(rig.models->list() == before);
}

TEST_CASE("ModelStore: staging is idempotent", "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto v1 = rig.stage("detector", "1.0");
    // Again with the source gone (a retry after the move), and again with a fresh download.
    REQUIRE(rig.models->stage(v1.version, v1.file));
    auto copy = makeModel(tmp.path(), "detector", "1.0", v1.bytes);
    REQUIRE(rig.models->stage(copy.version, copy.file));
    CHECK_FALSE(stdfs::exists(copy.file));
    const auto listed = rig.model("detector");
    CHECK(listed["staged"].size() == 1);
    CHECK(rig.entries("blobs") == std::set<std::string>{v1.version.sha256});
}

TEST_CASE("ModelStore: a file on another filesystem is copied in whole", "[edged][models]") {
    test::TempDir tmp;
    struct stat shm {};
    struct stat here {};
    if (::stat("/dev/shm", &shm) != 0 || ::stat(tmp.path().c_str(), &here) != 0 ||
        shm.st_dev == here.st_dev) {
        WARN("no second filesystem at /dev/shm: the cross-filesystem path is not exercised");
        return;
    }
    Rig rig(tmp.path());
    auto v1 = makeModel(tmp.path(), "detector", "1.0", "weights from tmpfs");
    const auto elsewhere = stdfs::path("/dev/shm") / ("edge-model-" + std::to_string(::getpid()));
    test::writeFile(elsewhere, v1.bytes);
    auto st = rig.models->stage(v1.version, elsewhere);
    INFO(what(st));
    REQUIRE(st);
    CHECK_FALSE(stdfs::exists(elsewhere));
    CHECK(test::readFile(rig.blob(v1)) == v1.bytes);
    CHECK(rig.entries("blobs") == std::set<std::string>{v1.version.sha256});
    rig.activate(v1);
    CHECK(test::readFile(rig.link("detector")) == v1.bytes);
}

TEST_CASE("ModelStore: reject() records the reason and keeps the active version",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto v1 = rig.stage("detector", "1.0");
    rig.activate(v1);
    auto v2 = rig.stage("detector", "2.0");
    REQUIRE(stdfs::exists(rig.blob(v2)));

    auto st = rig.models->reject(v2.version, "provenance denied: fairness 0.7 < 0.8");
    INFO(what(st));
    REQUIRE(st);
    CHECK(rig.linkTarget("detector") == linkTo(v1));
    const auto listed = rig.model("detector");
    CHECK(listed["active"]["version"] == "1.0");
    CHECK(listed["staged"].empty());
    CHECK(listed["last_error"]["version"] == "2.0");
    CHECK(listed["last_error"]["reason"] == "provenance denied: fairness 0.7 < 0.8");
    CHECK_FALSE(stdfs::exists(rig.blob(v2)));
    CHECK(codeOf(rig.models->activate("detector", v2.version.sha256, {})) == ModelErrc::kNotStaged);
}

TEST_CASE("ModelStore: rollback() returns to the newest previous version", "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path(), 3);
    CHECK(codeOf(rig.models->rollback("detector", "operator")) == ModelErrc::kState);
    auto v1 = rig.stage("detector", "1.0");
    rig.activate(v1);
    CHECK(codeOf(rig.models->rollback("detector", "operator")) == ModelErrc::kState);
    auto v2 = rig.stage("detector", "2.0");
    rig.activate(v2);
    auto v3 = rig.stage("detector", "3.0");
    rig.activate(v3);

    auto st = rig.models->rollback("detector", "accuracy regression");
    INFO(what(st));
    REQUIRE(st);
    CHECK(rig.linkTarget("detector") == linkTo(v2));
    auto listed = rig.model("detector");
    CHECK(listed["active"]["version"] == "2.0");
    REQUIRE(listed["previous"].size() == 1);
    CHECK(listed["previous"][0]["version"] == "1.0");
    CHECK(listed["last_error"]["version"] == "3.0");
    CHECK_THAT(listed["last_error"]["reason"].get<std::string>(),
               Catch::Contains("accuracy regression"));
    CHECK_FALSE(stdfs::exists(rig.blob(v3)));

    REQUIRE(rig.models->rollback("detector", "again"));
    CHECK(rig.linkTarget("detector") == linkTo(v1));
    CHECK(codeOf(rig.models->rollback("detector", "nothing left")) == ModelErrc::kState);
    CHECK(rig.linkTarget("detector") == linkTo(v1));
}

TEST_CASE("ModelStore: reopening after every operation gives the same list()",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    const auto same_after_reopen = [&](const char* step) {
        INFO(step);
        const auto before = rig.models->list();
        const auto links = rig.entries("current");
        const auto blobs = rig.entries("blobs");
        rig.reopen();
        CHECK(rig.models->list() == before);
        CHECK(rig.entries("current") == links);
        CHECK(rig.entries("blobs") == blobs);
    };
    auto v1 = rig.stage("detector", "1.0");
    same_after_reopen("stage 1");
    rig.activate(v1);
    same_after_reopen("activate 1");
    auto v2 = rig.stage("detector", "2.0");
    same_after_reopen("stage 2");
    rig.activate(v2);
    same_after_reopen("activate 2");
    auto v3 = rig.stage("detector", "3.0");
    rig.activate(v3, [](const ModelVersion&, const stdfs::path&) { return failWith("not ready"); });
    same_after_reopen("failed activation");
    auto c1 = rig.stage("classifier", "1.0");
    REQUIRE(rig.models->reject(c1.version, "denied"));
    same_after_reopen("reject");
    REQUIRE(rig.models->rollback("detector", "operator"));
    same_after_reopen("rollback");
    CHECK(rig.model("detector")["active"]["version"] == "1.0");
}

TEST_CASE("ModelStore: open() removes leftovers and reports a link to a missing blob",
          "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto v1 = rig.stage("detector", "1.0");
    rig.activate(v1);
    auto c1 = rig.stage("classifier", "1.0");
    rig.activate(c1);
    rig.models.reset();

    const auto models = tmp.path() / "models";
    stdfs::create_symlink("../blobs/" + c1.version.sha256, models / "current" / ".detector.tmp");
    stdfs::create_symlink("../blobs/" + c1.version.sha256, models / "current" / "ghost");
    test::writeFile(models / "blobs" / std::string(64, 'a'), "orphan");
    test::writeFile(models / "blobs" / ("." + std::string(64, 'b') + ".tmp"), "half");
    stdfs::remove(rig.blob(c1));
    rig.reopen();

    CHECK(rig.entries("current") == std::set<std::string>{"detector"});
    CHECK(rig.entries("blobs") == std::set<std::string>{v1.version.sha256});
    CHECK(rig.linkTarget("detector") == linkTo(v1));
    const auto classifier = rig.model("classifier");
    CHECK(classifier["active"].is_null());
    CHECK_THAT(classifier["last_error"]["reason"].get<std::string>(),
               Catch::Contains("missing"));
}

TEST_CASE("ModelStore: list() answers while a readiness check runs", "[edged][models]") {
    test::TempDir tmp;
    Rig rig(tmp.path());
    auto v1 = rig.stage("detector", "1.0");
    rig.activate(v1);
    auto v2 = rig.stage("detector", "2.0");

    std::promise<void> in_check;
    std::promise<void> release;
    auto released = release.get_future();
    std::optional<Result<ActivationOutcome>> out;
    std::thread worker([&] {
        out = rig.models->activate("detector", v2.version.sha256,
                                        [&](const ModelVersion&, const stdfs::path&) -> Status {
                                            in_check.set_value();
                                            released.wait();
                                            return {};
                                        });
    });
    in_check.get_future().wait();
    const auto listed = rig.model("detector");
    release.set_value();
    worker.join();

    REQUIRE(out.has_value());
    INFO(what(*out));
    REQUIRE(out->has_value());
    CHECK(listed["active"]["version"] == "1.0");
    CHECK(listed["activating"]["version"] == "2.0");
    CHECK(rig.model("detector")["active"]["version"] == "2.0");
    CHECK(rig.model("detector")["activating"].is_null());
}

// ---- crash tests -------------------------------------------------------------------------------

namespace {

constexpr int kCrashed = 42;
constexpr int kCompleted = 3;

/// A Store that ends the process just before, or just after, its n-th write (counted from 1).
class CrashingStore final : public store::Store {
public:
    explicit CrashingStore(store::Store& inner) : inner_(inner) {}
    /// Crash just before write number before, or just after write number after, counted from
    /// now (0: never).
    void arm(int before, int after) {
        writes_ = 0;
        crash_before = before;
        crash_after = after;
    }
    int crash_before = 0;
    int crash_after = 0;

    Status read(const std::function<Status(const store::ReadTxn&)>& fn) const override {
        return inner_.read(fn);
    }
    Status write(const std::function<Status(store::WriteTxn&)>& fn) override {
        ++writes_;
        if (writes_ == crash_before) ::_exit(kCrashed);
        auto st = inner_.write(fn);
        if (writes_ == crash_after) ::_exit(kCrashed);
        return st;
    }

private:
    store::Store& inner_;
    int writes_ = 0;
};

enum class CheckMode { kPass, kFail, kCrash };

struct CrashPlan {
    int before_write = 0;  // counted from the start of the last activate()
    int after_write = 0;
    CheckMode check = CheckMode::kPass;
};

/// The child: v1 active, v2 staged, then activate v2 under the crash plan.
int crashingChild(const stdfs::path& root, const CrashPlan& plan) {
    auto lmdb = store::LmdbStore::open(root / "db");
    if (!lmdb) return 10;
    CrashingStore db(**lmdb);
    test::FakeClock clock;
    auto models = ModelStore::open(root / "models", db, ModelStoreOptions{.clock = clock});
    if (!models) return 11;
    auto v1 = makeModel(root, "detector", "1.0", "weights one");
    auto v2 = makeModel(root, "detector", "2.0", "weights two, longer");
    if (!models->stage(v1.version, v1.file)) return 12;
    if (!models->activate("detector", v1.version.sha256, {})) return 13;
    if (!models->stage(v2.version, v2.file)) return 14;
    db.arm(plan.before_write, plan.after_write);
    auto out = models->activate("detector", v2.version.sha256,
                                [&](const ModelVersion&, const stdfs::path&) -> Status {
                                    if (plan.check == CheckMode::kCrash) ::_exit(kCrashed);
                                    if (plan.check == CheckMode::kFail) return failWith("not ready");
                                    return {};
                                });
    if (!out) return 15;
    return kCompleted;
}

/// What must hold after any crash: one of the two versions active, a consistent record, no
/// leftovers, the link's target whole. Returns the active version's name.
std::string checkConsistent(Rig& rig) {
    const auto listed = rig.models->list();
    INFO(listed.dump());
    REQUIRE(listed["models"].size() == 1);
    const auto& m = listed["models"][0];
    CHECK(m["activating"].is_null());
    REQUIRE(m["active"].is_object());
    const std::string version = m["active"]["version"];
    REQUIRE((version == "1.0" || version == "2.0"));
    const std::string bytes = version == "1.0" ? "weights one" : "weights two, longer";
    CHECK(rig.linkTarget("detector") == "../blobs/" + security::sha256Hex(bytes));
    CHECK(test::readFile(rig.link("detector")) == bytes);
    CHECK(stdfs::file_size(rig.link("detector")) == m["active"]["size"].get<std::uint64_t>());
    CHECK(rig.entries("current") == std::set<std::string>{"detector"});
    std::set<std::string> referenced{m["active"]["sha256"].get<std::string>()};
    for (const auto& v : m["previous"]) referenced.insert(v["sha256"].get<std::string>());
    for (const auto& v : m["staged"]) referenced.insert(v["sha256"].get<std::string>());
    CHECK(rig.entries("blobs") == referenced);
    if (version == "2.0") {
        REQUIRE(m["previous"].size() == 1);
        CHECK(m["previous"][0]["version"] == "1.0");
    }
    // Stable: another restart changes nothing.
    rig.reopen();
    CHECK(rig.models->list() == listed);
    return version;
}

std::string crashAndReopen(const CrashPlan& plan) {
    test::TempDir tmp;
    const int code = test::inChild([&] { return crashingChild(tmp.path(), plan); });
    REQUIRE(code == kCrashed);
    Rig rig(tmp.path());
    return checkConsistent(rig);
}

}  // namespace

TEST_CASE("ModelStore crash: killed inside activate, a restart finds the old or the new model",
          "[edged][models][crash]") {
    SECTION("after the intent is committed: the old version, reported as interrupted") {
        test::TempDir tmp;
        REQUIRE(test::inChild([&] { return crashingChild(tmp.path(), {.after_write = 1}); }) ==
                kCrashed);
        Rig rig(tmp.path());
        CHECK(checkConsistent(rig) == "1.0");
        const auto m = rig.model("detector");
        CHECK(m["last_error"]["version"] == "2.0");
        CHECK_THAT(m["last_error"]["reason"].get<std::string>(), Catch::Contains("interrupted"));
        // The interrupted version stays staged and can be activated again.
        REQUIRE(m["staged"].size() == 1);
        auto again = rig.models->activate("detector", m["staged"][0]["sha256"].get<std::string>(), {});
        REQUIRE(again);
        CHECK_FALSE(again->rolled_back);
        CHECK(rig.model("detector")["active"]["version"] == "2.0");
    }
    SECTION("after the link rename, during the readiness check: the old version") {
        CHECK(crashAndReopen({.check = CheckMode::kCrash}) == "1.0");
    }
    SECTION("before the final record: the old version") {
        CHECK(crashAndReopen({.before_write = 2}) == "1.0");
    }
    SECTION("after the final record, before gc: the new version") {
        CHECK(crashAndReopen({.after_write = 2}) == "2.0");
    }
    SECTION("a failed check, after the link went back but before the record: the old version") {
        CHECK(crashAndReopen({.before_write = 2, .check = CheckMode::kFail}) == "1.0");
    }
    SECTION("a failed check, after the record: the old version") {
        CHECK(crashAndReopen({.after_write = 2, .check = CheckMode::kFail}) == "1.0");
    }
}

TEST_CASE("ModelStore crash: killed around every store write of a whole history, consistent",
          "[edged][models][crash]") {
    // Stage, activate, stage, activate (pass or fail), rollback: crash before and after the
    // k-th write, until the child completes without reaching k.
    for (bool before : {true, false}) {
        int crashes = 0;
        for (int k = 1; k < 30; ++k) {
            CAPTURE(before, k);
            test::TempDir tmp;
            const int code = test::inChild([&]() -> int {
                auto lmdb = store::LmdbStore::open(tmp.path() / "db");
                if (!lmdb) return 10;
                CrashingStore db(**lmdb);
                db.arm(before ? k : 0, before ? 0 : k);
                test::FakeClock clock;
                auto models = ModelStore::open(tmp.path() / "models", db, ModelStoreOptions{.clock = clock});
                if (!models) return 11;
                auto v1 = makeModel(tmp.path(), "detector", "1.0", "weights one");
                auto v2 = makeModel(tmp.path(), "detector", "2.0", "weights two, longer");
                auto v3 = makeModel(tmp.path(), "detector", "3.0", "weights three");
                if (!models->stage(v1.version, v1.file)) return 12;
                if (!models->activate("detector", v1.version.sha256, {})) return 13;
                if (!models->stage(v2.version, v2.file)) return 14;
                if (!models->stage(v3.version, v3.file)) return 15;
                if (!models->activate("detector", v3.version.sha256,
                                      [](const ModelVersion&, const stdfs::path&) {
                                          return failWith("not ready");
                                      })) {
                    return 16;
                }
                if (!models->activate("detector", v2.version.sha256, {})) return 17;
                if (!models->rollback("detector", "operator")) return 18;
                return kCompleted;
            });
            if (code == kCompleted) break;
            REQUIRE(code == kCrashed);
            ++crashes;
            Rig rig(tmp.path());
            const auto listed = rig.models->list();
            INFO(listed.dump());
            if (listed["models"].empty() || listed["models"][0]["active"].is_null()) {
                // Before the first activation finished: no link, and no blob without a record.
                CHECK(rig.entries("current").empty());
                continue;
            }
            const auto& m = listed["models"][0];
            CHECK(m["activating"].is_null());
            const std::string version = m["active"]["version"];
            CHECK((version == "1.0" || version == "2.0"));
            CHECK(rig.linkTarget("detector") == "../blobs/" + m["active"]["sha256"].get<std::string>());
            CHECK(stdfs::file_size(rig.link("detector")) == m["active"]["size"].get<std::uint64_t>());
            CHECK(rig.entries("current") == std::set<std::string>{"detector"});
            rig.reopen();
            CHECK(rig.models->list() == listed);
        }
        CHECK(crashes >= 8);
    }
}
