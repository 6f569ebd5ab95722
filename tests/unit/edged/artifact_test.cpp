// The control plane's artifact store and edged's artifact fetcher, against real servers on
// loopback ports (a BeastHttpServer, with mutual TLS where it matters, and a raw socket server
// that misbehaves on purpose) and real files.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cctype>
#include <future>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "controlplane/artifact_store.hpp"
#include "edged/artifact_fetcher.hpp"
#include "security/crypto.hpp"
#include "shared/http/beast/beast_server.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/ports.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/edged/artifact_servers.hpp"

using namespace edge;
namespace fs = std::filesystem;
using controlplane::ArtifactStore;
using edged::FetchErrc;

namespace {

std::string pattern(std::size_t n, unsigned seed = 7) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * seed + i / 251) & 0xff);
    return out;
}

using Pki = test::TestPki;
using test::RawServer;
using test::StoreRig;

/// Serves content like an artifact store would (200, or 206 for a Range), but the first
/// `cut_connections` connections end after `cut_after` body bytes.
RawServer::Serve breakingServer(const std::string& content, int cut_connections,
                                std::size_t cut_after) {
    return [&content, cut_connections, cut_after](int fd, const std::string& head, int index) {
        const auto start = RawServer::rangeStart(head);
        std::string reply;
        if (start > 0) {
            reply = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " +
                    std::to_string(start) + "-" + std::to_string(content.size() - 1) + "/" +
                    std::to_string(content.size()) + "\r\n";
        } else {
            reply = "HTTP/1.1 200 OK\r\n";
        }
        reply += "Content-Length: " + std::to_string(content.size() - start) +
                 "\r\nConnection: close\r\n\r\n";
        std::string_view body = std::string_view(content).substr(start);
        if (index < cut_connections) body = body.substr(0, cut_after);
        RawServer::sendAll(fd, reply);
        RawServer::sendAll(fd, body);
    };
}

http::Request get(std::string path, http::Headers headers = {}) {
    http::Request r;
    r.method = "GET";
    r.path = std::move(path);
    r.headers = std::move(headers);
    return r;
}

/// The bytes a Response's FileBody stands for.
std::string fileBytes(const http::Response& res) {
    REQUIRE(res.file);
    std::string out(res.file->length(), '\0');
    REQUIRE(::pread(res.file->fd(), out.data(), out.size(),
                    static_cast<off_t>(res.file->offset())) == static_cast<ssize_t>(out.size()));
    return out;
}

}  // namespace

TEST_CASE("ArtifactStore: add stores a file under its sha256, atomically and idempotently",
          "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern(300000);
    test::writeFile(dir / "image.bin", content);
    ArtifactStore store(dir / "store");
    auto digest = store.add(dir / "image.bin");
    INFO((digest ? "" : digest.error().what()));
    REQUIRE(digest);
    CHECK(*digest == security::sha256Hex(content));
    CHECK(test::readFile(dir / "store" / *digest) == content);
    CHECK(store.contains(*digest));
    auto again = store.add(dir / "image.bin");
    REQUIRE(again);
    CHECK(*again == *digest);
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir / "store")) ++files;
    CHECK(files == 1);  // no temporary file left behind
    auto missing = store.add(dir / "missing.bin");
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error().what(), Catch::Contains("missing.bin"));
}

TEST_CASE("ArtifactStore: GET serves the whole file, Range serves a part, 416 past the end",
          "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern(1000);
    test::writeFile(dir / "a.bin", content);
    ArtifactStore store(dir / "store");
    const auto digest = *store.add(dir / "a.bin");
    const std::string path = "/v1/artifacts/" + digest;

    auto whole = store.handle(get(path));
    CHECK(whole.status == 200);
    CHECK(whole.content_type == "application/octet-stream");
    CHECK(fileBytes(whole) == content);
    CHECK(http::findHeader(whole.headers, "ETag") == "\"" + digest + "\"");
    CHECK(http::findHeader(whole.headers, "Accept-Ranges") == "bytes");

    auto from = store.handle(get(path, {{"Range", "bytes=990-"}}));
    CHECK(from.status == 206);
    CHECK(http::findHeader(from.headers, "Content-Range") == "bytes 990-999/1000");
    CHECK(fileBytes(from) == content.substr(990));

    auto span = store.handle(get(path, {{"range", "bytes=10-19"}}));
    CHECK(span.status == 206);
    CHECK(http::findHeader(span.headers, "Content-Range") == "bytes 10-19/1000");
    CHECK(fileBytes(span) == content.substr(10, 10));

    auto clamped = store.handle(get(path, {{"Range", "bytes=995-5000"}}));
    CHECK(clamped.status == 206);
    CHECK(fileBytes(clamped) == content.substr(995));

    auto suffix = store.handle(get(path, {{"Range", "bytes=-4"}}));
    CHECK(suffix.status == 206);
    CHECK(fileBytes(suffix) == content.substr(996));

    auto past = store.handle(get(path, {{"Range", "bytes=1000-"}}));
    CHECK(past.status == 416);
    CHECK(http::findHeader(past.headers, "Content-Range") == "bytes */1000");
    CHECK_FALSE(past.file);

    for (const char* ignored : {"bytes=5-2", "bytes=0-1,5-6", "items=0-1", "bytes=x-"}) {
        INFO(ignored);
        auto res = store.handle(get(path, {{"Range", ignored}}));
        CHECK(res.status == 200);
        CHECK(fileBytes(res) == content);
    }
}

TEST_CASE("ArtifactStore: paths that are not exactly a digest are refused", "[artifacts]") {
    test::TempDir dir;
    test::writeFile(dir / "secret", "do not serve");
    test::writeFile(dir / "a.bin", "artifact");
    ArtifactStore store(dir / "store");
    const auto digest = *store.add(dir / "a.bin");
    std::string upper = digest;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));

    for (const std::string& name :
         {std::string("../secret"), std::string("abc"), upper, digest.substr(1), digest + "0",
          digest + "/x", "../" + digest, std::string(""), std::string("%2e%2e/secret"),
          std::string(64, 'g')}) {
        INFO(name);
        auto res = store.handle(get("/v1/artifacts/" + name));
        CHECK(res.status == 400);
        CHECK_FALSE(res.file);
    }
    CHECK(store.handle(get("/v1/artifacts/" + std::string(64, '0'))).status == 404);
    CHECK(store.handle(get("/v1/other/" + digest)).status == 404);
    auto post = get("/v1/artifacts/" + digest);
    post.method = "POST";
    CHECK(store.handle(post).status == 405);
    auto head = get("/v1/artifacts/" + digest);
    head.method = "HEAD";
    CHECK(store.handle(head).status == 200);
}

TEST_CASE("ArtifactStore: a symlink in the store pointing outside is not followed", "[artifacts]") {
    test::TempDir dir;
    const std::string secret = "a file outside the store";
    test::writeFile(dir / "secret", secret);
    ArtifactStore store(dir / "store");
    fs::create_directories(dir / "store");
    const auto digest = security::sha256Hex(secret);
    fs::create_symlink(dir / "secret", dir / "store" / digest);
    auto res = store.handle(get("/v1/artifacts/" + digest));
    CHECK(res.status == 404);
    CHECK_FALSE(res.file);
    CHECK_FALSE(store.contains(digest));

    fs::create_directory(dir / "store" / std::string(64, 'a'));  // not a regular file either
    CHECK(store.handle(get("/v1/artifacts/" + std::string(64, 'a'))).status == 404);
}

TEST_CASE("ArtifactStore over HTTP: GET, HEAD, Range and refused paths through the server",
          "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern(3u << 20);
    test::writeFile(dir / "a.bin", content);
    ArtifactStore store(dir / "store");
    const auto digest = *store.add(dir / "a.bin");
    StoreRig rig(store);

    auto whole = http::request("GET", rig.url(digest));
    REQUIRE(whole);
    CHECK(whole->status == 200);
    CHECK(whole->body == content);

    auto head = http::request("HEAD", rig.url(digest));
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->body.empty());
    CHECK(http::findHeader(head->headers, "Content-Length") == std::to_string(content.size()));

    std::string part;
    auto ranged = http::downloadTo(
        rig.url(digest), {{"Range", "bytes=100-199"}}, nullptr, {},
        [&](std::string_view chunk) {
            part.append(chunk);
            return Status{};
        },
        1000);
    REQUIRE(ranged);
    CHECK(ranged->status == 206);
    CHECK(http::findHeader(ranged->headers, "Content-Range") ==
          "bytes 100-199/" + std::to_string(content.size()));
    CHECK(part == content.substr(100, 100));

    auto past = http::downloadTo(
        rig.url(digest), {{"Range", "bytes=999999999-"}}, nullptr, {},
        [](std::string_view) { return Status{}; }, 10);
    REQUIRE(past);
    CHECK(past->status == 416);

    auto escape = http::request("GET", rig.url("..%2f..%2fsecret"));
    REQUIRE(escape);
    CHECK(escape->status == 400);
}

TEST_CASE("fetchArtifact: a full download over mutual TLS is verified and renamed into place",
          "[artifacts][tls]") {
    Pki pki;
    test::TempDir dir;
    const std::string content = pattern(2500000);
    test::writeFile(dir / "model.bin", content);
    ArtifactStore store(dir / "store");
    const auto digest = *store.add(dir / "model.bin");
    StoreRig rig(store, &pki);
    const auto tls = pki.client();
    std::vector<edged::FetchProgress> seen;
    auto ok = edged::fetchArtifact(rig.httpsUrl(digest), digest, content.size(), dir / "out.bin",
                                   &tls, [&](const edged::FetchProgress& p) { seen.push_back(p); });
    INFO((ok ? "" : ok.error().what()));
    REQUIRE(ok);
    CHECK(test::readFile(dir / "out.bin") == content);
    CHECK_FALSE(fs::exists(dir / "out.bin.part"));
    REQUIRE(seen.size() >= 3);
    CHECK(seen.front().done == 0);
    CHECK(seen.back().done == content.size());
    CHECK(seen.back().total == content.size());
    CHECK(std::is_sorted(seen.begin(), seen.end(),
                         [](const auto& a, const auto& b) { return a.done < b.done; }));
    CHECK(rig.peers.at(0) == "edge-1");
}

TEST_CASE("fetchArtifact: a broken connection is resumed with a Range request", "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern(200000);
    const auto digest = security::sha256Hex(content);
    const auto dest = dir / "out.bin";

    SECTION("within one call") {
        RawServer server(breakingServer(content, 2, 30000));
        auto ok = edged::fetchArtifact(server.url(), digest, content.size(), dest, nullptr);
        INFO((ok ? "" : ok.error().what()));
        REQUIRE(ok);
        CHECK(test::readFile(dest) == content);
        const auto heads = server.heads();
        REQUIRE(heads.size() == 3);
        CHECK(heads[0].find("Range:") == std::string::npos);
        CHECK_THAT(heads[1], Catch::Contains("Range: bytes=30000-"));
        CHECK_THAT(heads[2], Catch::Contains("Range: bytes=60000-"));
    }
    SECTION("in a later call, from the .part the failed one left") {
        RawServer server(breakingServer(content, 1, 50000));
        edged::FetchOptions once;
        once.max_attempts = 1;
        auto first =
            edged::fetchArtifact(server.url(), digest, content.size(), dest, nullptr, {}, once);
        REQUIRE_FALSE(first);
        CHECK(first.error().code() == SharedErrc::kHttp);
        CHECK_THAT(first.error().what(), Catch::Contains("50000 of 200000 bytes"));
        CHECK(fs::file_size(dir / "out.bin.part") == 50000);
        CHECK_FALSE(fs::exists(dest));

        std::uint64_t resumed_from = 0;
        auto second = edged::fetchArtifact(
            server.url(), digest, content.size(), dest, nullptr,
            [&](const edged::FetchProgress& p) { resumed_from = p.resumed_from; }, once);
        INFO((second ? "" : second.error().what()));
        REQUIRE(second);
        CHECK(resumed_from == 50000);
        CHECK(test::readFile(dest) == content);
        CHECK_THAT(server.heads().at(1), Catch::Contains("Range: bytes=50000-"));
    }
}

TEST_CASE("fetchArtifact: an endless or oversized body is cut at the declared size",
          "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern(100000);
    const auto digest = security::sha256Hex(content);
    const auto dest = dir / "out.bin";

    SECTION("a close-delimited body that never ends") {
        std::atomic<std::size_t> sent{0};
        RawServer server([&](int fd, const std::string&, int) {
            RawServer::sendAll(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            const std::string chunk = pattern(65536, 3);
            while (sent < (256u << 20) && RawServer::sendAll(fd, chunk)) sent += chunk.size();
        });
        auto res = edged::fetchArtifact(server.url(), digest, content.size(), dest, nullptr);
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == FetchErrc::kSize);
        CHECK_THAT(res.error().what(), Catch::Contains("more than the declared 100000 bytes"));
        CHECK(fs::file_size(dir / "out.bin.part") <= content.size());
        CHECK_FALSE(fs::exists(dest));
        CHECK(sent < (256u << 20));  // the client hung up instead of draining the stream
    }
    SECTION("a declared Content-Length over the size fails before any byte is written") {
        RawServer server([&](int fd, const std::string&, int) {
            RawServer::sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100001\r\n\r\n");
            RawServer::sendAll(fd, content + "x");
        });
        auto res = edged::fetchArtifact(server.url(), digest, content.size(), dest, nullptr);
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == FetchErrc::kSize);
        CHECK(fs::file_size(dir / "out.bin.part") == 0);
    }
    SECTION("a chunked body longer than declared") {
        RawServer server([&](int fd, const std::string&, int) {
            RawServer::sendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (int i = 0; i < 4; ++i) {
                RawServer::sendAll(fd, "8000\r\n" + pattern(0x8000) + "\r\n");
            }
            RawServer::sendAll(fd, "0\r\n\r\n");
        });
        auto res = edged::fetchArtifact(server.url(), digest, content.size(), dest, nullptr);
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == FetchErrc::kSize);
        CHECK(fs::file_size(dir / "out.bin.part") <= content.size());
    }
}

TEST_CASE("fetchArtifact: a wrong digest fails, removes the .part and leaves no file at dest",
          "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern(120000);
    test::writeFile(dir / "a.bin", content);
    ArtifactStore store(dir / "store");
    const auto digest = *store.add(dir / "a.bin");
    StoreRig rig(store);
    const auto wrong = security::sha256Hex("something else");
    // The URL names the real artifact, the manifest claims another digest.
    auto res =
        edged::fetchArtifact(rig.url(digest), wrong, content.size(), dir / "out.bin", nullptr);
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == FetchErrc::kDigest);
    CHECK_THAT(res.error().what(), Catch::Contains(wrong) && Catch::Contains(digest));
    CHECK_FALSE(fs::exists(dir / "out.bin"));
    CHECK_FALSE(fs::exists(dir / "out.bin.part"));

    auto bad_text =
        edged::fetchArtifact(rig.url(digest), "ABC", content.size(), dir / "out.bin", nullptr);
    REQUIRE_FALSE(bad_text);
    CHECK(bad_text.error().code() == FetchErrc::kInvalidArgument);

    auto missing = edged::fetchArtifact(rig.url(wrong), wrong, 10, dir / "out.bin", nullptr);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == FetchErrc::kServer);
    CHECK_THAT(missing.error().what(), Catch::Contains("404"));
}

TEST_CASE("fetchArtifact: after a restart, the .part of the previous run is continued",
          "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern(400000);
    test::writeFile(dir / "a.bin", content);
    ArtifactStore store(dir / "store");
    const auto digest = *store.add(dir / "a.bin");
    StoreRig rig(store);
    const auto dest = dir / "out.bin";
    const auto part = dir / "out.bin.part";

    SECTION("a correct prefix is continued with a Range request") {
        test::writeFile(part, content.substr(0, 123456));
        auto ok = edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr);
        INFO((ok ? "" : ok.error().what()));
        REQUIRE(ok);
        CHECK(test::readFile(dest) == content);
        CHECK(rig.seenRanges() == std::vector<std::string>{"bytes=123456-"});
    }
    SECTION("a server that ignores Range restarts the .part from zero") {
        rig.ignore_range = true;
        test::writeFile(part, content.substr(0, 1000));
        auto ok = edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr);
        REQUIRE(ok);
        CHECK(test::readFile(dest) == content);
    }
    SECTION("a complete .part is verified without a request") {
        test::writeFile(part, content);
        REQUIRE(edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr));
        CHECK(test::readFile(dest) == content);
        CHECK(rig.seenRanges().empty());
    }
    SECTION("a corrupt prefix fails the digest, so the download is done once more from byte 0") {
        std::string corrupt = content.substr(0, 5000);
        corrupt[42] ^= 1;
        test::writeFile(part, corrupt);
        auto ok = edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr);
        INFO((ok ? "" : ok.error().what()));
        REQUIRE(ok);
        CHECK(test::readFile(dest) == content);
        CHECK_FALSE(fs::exists(part));
        CHECK(rig.seenRanges() == std::vector<std::string>{"bytes=5000-", ""});
    }
    SECTION("a kept prefix and a digest the server's bytes never have: once more from 0, then kDigest") {
        test::writeFile(part, content.substr(0, 5000));
        const auto wrong = security::sha256Hex("something else");
        auto res = edged::fetchArtifact(rig.url(digest), wrong, content.size(), dest, nullptr);
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == FetchErrc::kDigest);
        CHECK_FALSE(fs::exists(part));
        CHECK_FALSE(fs::exists(dest));
        CHECK(rig.seenRanges() == std::vector<std::string>{"bytes=5000-", ""});
    }
    SECTION("a .part longer than the artifact is discarded") {
        test::writeFile(part, content + "extra");
        REQUIRE(edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr));
        CHECK(test::readFile(dest) == content);
        CHECK(rig.seenRanges() == std::vector<std::string>{""});
    }
}

TEST_CASE("fetchArtifact: a server's error page and header values reach the message escaped",
          "[artifacts]") {
    // Bytes that are not UTF-8 (and control characters) in what a server sends must not reach
    // logs or the JSON that status and LMDB records are made of: nlohmann::json throws on them.
    test::TempDir dir;
    const std::string page = std::string(510, 'x') + "\xe2\x82\xac tail\n\xff";
    const std::string range = "bytes \xff\xfe";  // Beast refuses control characters itself
    RawServer server([&](int fd, const std::string& head, int) {
        std::string reply;
        if (head.find("Range:") == std::string::npos) {
            reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: " + std::to_string(page.size()) +
                    "\r\nConnection: close\r\n\r\n" + page;
        } else {
            reply = "HTTP/1.1 206 Partial Content\r\nContent-Range: " + range +
                    "\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        }
        RawServer::sendAll(fd, reply);
    });
    const auto digest = security::sha256Hex("whatever");
    const auto printable = [](const std::string& text) {
        return std::all_of(text.begin(), text.end(), [](char c) {
            return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
        });
    };

    auto page_error = edged::fetchArtifact(server.url(), digest, 100, dir / "a.bin", nullptr);
    REQUIRE_FALSE(page_error);
    CHECK(page_error.error().code() == FetchErrc::kServer);
    const auto what = page_error.error().what();
    CHECK_THAT(what, Catch::Contains("503") && Catch::Contains("xx\\xe2\\x82..."));
    CHECK(printable(what));
    CHECK_NOTHROW(nlohmann::json(what).dump());

    test::writeFile(dir / "b.bin.part", "12345");
    auto range_error = edged::fetchArtifact(server.url(), digest, 100, dir / "b.bin", nullptr);
    REQUIRE_FALSE(range_error);
    const auto range_what = range_error.error().what();
    CHECK_THAT(range_what, Catch::Contains("bad Content-Range 'bytes \\xff\\xfe'"));
    CHECK(printable(range_what));
}

TEST_CASE("holdsArtifact: only a regular file of the right size and digest", "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern(3 * 1024 * 1024 + 17);
    const auto digest = security::sha256Hex(content);
    test::writeFile(dir / "a.bin", content);
    CHECK(edged::holdsArtifact(dir / "a.bin", digest, content.size()));
    CHECK_FALSE(edged::holdsArtifact(dir / "a.bin", digest, content.size() + 1));
    CHECK_FALSE(edged::holdsArtifact(dir / "a.bin", security::sha256Hex("other"), content.size()));
    CHECK_FALSE(edged::holdsArtifact(dir / "missing.bin", digest, content.size()));
    std::string flipped = content;
    flipped[content.size() - 1] ^= 1;
    test::writeFile(dir / "b.bin", flipped);
    CHECK_FALSE(edged::holdsArtifact(dir / "b.bin", digest, content.size()));
    fs::create_symlink(dir / "a.bin", dir / "link.bin");
    CHECK_FALSE(edged::holdsArtifact(dir / "link.bin", digest, content.size()));
    // A stop asked for cuts the hashing short: no verdict, so not held.
    int asked = 0;
    CHECK_FALSE(edged::holdsArtifact(dir / "a.bin", digest, content.size(), [&] { return ++asked > 2; }));
    CHECK(asked == 3);  // 1 MiB per read: stopped before the third
    CHECK(edged::holdsArtifact(dir / "a.bin", digest, content.size(), [] { return false; }));
}

TEST_CASE("fetchArtifact: multi-MiB artifacts arrive whole, fresh, resumed or restarted",
          "[artifacts]") {
    // Several staging buffers' worth, with a ragged end: the double buffering, the hashing
    // thread and the re-hash of a multi-MiB .part all take part.
    test::TempDir dir;
    const std::string content = pattern((5u << 20) + 12345, 11);
    test::writeFile(dir / "a.bin", content);
    ArtifactStore store(dir / "store");
    const auto digest = *store.add(dir / "a.bin");
    StoreRig rig(store);
    const auto dest = dir / "out.bin";
    const auto part = dir / "out.bin.part";
    std::vector<edged::FetchProgress> seen;
    const auto progress = [&](const edged::FetchProgress& p) { seen.push_back(p); };

    SECTION("fresh, with progress about every MiB") {
        auto ok = edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr,
                                       progress);
        INFO((ok ? "" : ok.error().what()));
        REQUIRE(ok);
        CHECK(test::readFile(dest) == content);
        CHECK(seen.size() >= 6);
        CHECK(seen.back().done == content.size());
        CHECK(std::is_sorted(seen.begin(), seen.end(),
                             [](const auto& a, const auto& b) { return a.done < b.done; }));
    }
    SECTION("from a .part of a few MiB") {
        const std::size_t prefix = (3u << 20) + 777;
        test::writeFile(part, content.substr(0, prefix));
        auto ok = edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr,
                                       progress);
        INFO((ok ? "" : ok.error().what()));
        REQUIRE(ok);
        CHECK(test::readFile(dest) == content);
        CHECK(seen.front().resumed_from == prefix);
        CHECK(rig.seenRanges() == std::vector<std::string>{"bytes=" + std::to_string(prefix) + "-"});
    }
    SECTION("a corrupt byte deep in a multi-MiB .part fails the digest: downloaded again whole") {
        std::string corrupt = content.substr(0, (2u << 20) + 5);
        corrupt[(1u << 20) + 3] ^= 1;
        test::writeFile(part, corrupt);
        auto ok = edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr);
        INFO((ok ? "" : ok.error().what()));
        REQUIRE(ok);
        CHECK(test::readFile(dest) == content);
        CHECK_FALSE(fs::exists(part));
        CHECK(rig.seenRanges() == std::vector<std::string>{"bytes=" + std::to_string((2u << 20) + 5) + "-", ""});
    }
    SECTION("a server that ignores Range restarts a multi-MiB .part from zero") {
        rig.ignore_range = true;
        test::writeFile(part, content.substr(0, (2u << 20) + 99));
        auto ok = edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr);
        INFO((ok ? "" : ok.error().what()));
        REQUIRE(ok);
        CHECK(test::readFile(dest) == content);
    }
}

TEST_CASE("fetchArtifact: connections broken after a few MiB are resumed within one call",
          "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern((4u << 20) + 3, 13);
    const auto digest = security::sha256Hex(content);
    RawServer server(breakingServer(content, 2, (1u << 20) + 4097));
    auto ok = edged::fetchArtifact(server.url(), digest, content.size(), dir / "out.bin", nullptr);
    INFO((ok ? "" : ok.error().what()));
    REQUIRE(ok);
    CHECK(test::readFile(dir / "out.bin") == content);
    const auto heads = server.heads();
    REQUIRE(heads.size() == 3);
    CHECK_THAT(heads[1], Catch::Contains("Range: bytes=" + std::to_string((1u << 20) + 4097) + "-"));
    CHECK_THAT(heads[2], Catch::Contains("Range: bytes=" + std::to_string(2 * ((1u << 20) + 4097)) + "-"));
}

TEST_CASE("fetchInto: a stop request ends the transfer at once and keeps what arrived; a failing target is kIo",
          "[artifacts]") {
    test::TempDir dir;
    const std::string content = pattern((3u << 20) + 999, 21);
    test::writeFile(dir / "a.bin", content);
    ArtifactStore store(dir / "store");
    const auto digest = *store.add(dir / "a.bin");
    StoreRig rig(store);

    SECTION("stop") {
        const auto dest = dir / "out.bin";
        edged::FetchOptions options;
        int asked = 0;
        options.stop = [&asked] { return ++asked > 3; };  // a shutdown after a few chunks
        auto stopped = edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr, {}, options);
        REQUIRE_FALSE(stopped);
        CHECK(stopped.error().code() == edged::FetchErrc::kStopped);
        CHECK_FALSE(fs::exists(dest));
        const auto kept = test::readFile(dir / "out.bin.part");
        CHECK(kept.size() < content.size());
        CHECK(kept == content.substr(0, kept.size()));
        // The next start continues from there.
        REQUIRE(edged::fetchArtifact(rig.url(digest), digest, content.size(), dest, nullptr));
        CHECK(test::readFile(dest) == content);
    }
    SECTION("a target that cannot be written") {
        const auto path = dir / "read-only";
        test::writeFile(path, "");
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        {
            security::StreamWriter out(fd, path.string());
            auto st = edged::fetchInto(rig.url(digest), content.size(), out, nullptr);
            REQUIRE_FALSE(st);
            CHECK(st.error().code() == edged::FetchErrc::kIo);
            CHECK_THAT(st.error().what(), Catch::Contains(path.string()));
        }
        ::close(fd);
    }
}
