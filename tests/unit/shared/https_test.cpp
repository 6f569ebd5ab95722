// HTTPS with mutual TLS, HEAD, response headers, file bodies and streamed downloads, against
// real BeastHttpServers on loopback ports with certificates made by the openssl CLI.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <fstream>
#include <future>
#include <span>
#include <thread>

#include "shared/http/beast/beast_server.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "tests/support/loop_thread.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/ports.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;
namespace fs = std::filesystem;

namespace {

using Pki = test::TestPki;

/// A BeastHttpServer with a TLS listener (and a plain one), its loop on a background thread.
struct TlsRig {
    AsioEventLoop loop;
    http::BeastHttpServer server;
    std::atomic<int> handled{0};
    int tls_port = 0;
    int plain_port = 0;
    test::LoopThread runner{loop};

    TlsRig(const http::TlsServerOptions& tls, http::Handler handler)
        : server(loop, [this, handler = std::move(handler)](const http::Request& r) {
              ++handled;
              return handler(r);
          }) {
        auto bound = server.listenTls("127.0.0.1", 0, tls);
        INFO((bound ? "" : bound.error().what()));
        REQUIRE(bound);
        tls_port = *bound;
        auto plain = server.listen("127.0.0.1", 0);
        REQUIRE(plain);
        plain_port = *plain;
        runner.start();
    }
    ~TlsRig() { runner.stop([this] { server.stop(); }); }
    std::string https(std::string_view path) const {
        return "https://127.0.0.1:" + std::to_string(tls_port) + std::string(path);
    }
    std::string http(std::string_view path) const {
        return "http://127.0.0.1:" + std::to_string(plain_port) + std::string(path);
    }
};

http::Response whoami(const http::Request& r) {
    http::Response res{
        200, "text/plain",
        "cn=" + r.peer_cn + " x=" + http::findHeader(r.headers, "x-test").value_or("-")};
    res.headers = {{"X-Served-By", "edge-test"},
                   {"Content-Length", "999"},         // the server's own field: dropped
                   {"X-Bad", "a\r\nX-Injected: 1"}};  // not a valid value: dropped
    return res;
}

/// Bytes 0..n-1 of a recognisable pattern.
std::string pattern(std::size_t n) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
    return out;
}

/// A handler serving the file at path whole through a FileBody.
http::Handler fileHandler(fs::path path) {
    return [path = std::move(path)](const http::Request& r) {
        if (r.path != "/file") return http::errorResponse(404, "no such file");
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return http::errorResponse(500, "cannot open the test file");
        http::Response res;
        res.content_type = "application/octet-stream";
        res.file = std::make_shared<http::FileBody>(fd, 0, fs::file_size(path));
        return res;
    };
}

/// A raw TCP server on a loopback port for one connection: reads the request head, then hands
/// the socket to serve() on its own thread, then closes it.
class OneShotServer {
public:
    explicit OneShotServer(std::function<void(int fd)> serve) {
        listen_fd_ = test::listenLoopback(port_, 4);
        thread_ = std::thread([this, serve = std::move(serve)] {
            pollfd pfd{listen_fd_, POLLIN, 0};
            if (::poll(&pfd, 1, 5000) <= 0) return;
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) return;
            std::string head;
            char buffer[4096];
            while (head.find("\r\n\r\n") == std::string::npos) {
                const auto n = ::recv(fd, buffer, sizeof(buffer), 0);
                if (n <= 0) break;
                head.append(buffer, static_cast<std::size_t>(n));
            }
            serve(fd);
            ::shutdown(fd, SHUT_RDWR);
            ::close(fd);
        });
    }
    ~OneShotServer() {
        thread_.join();
        ::close(listen_fd_);
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/file"; }
    static void sendAll(int fd, std::string_view data) {
        while (!data.empty()) {
            const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
            if (n <= 0) return;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }

private:
    int listen_fd_ = -1;
    int port_ = 0;
    std::thread thread_;
};

}  // namespace

TEST_CASE("HTTPS: a client certificate from the client CA is served, the handler sees its CN",
          "[http][tls]") {
    Pki pki;
    TlsRig rig(pki.server(), whoami);
    auto res =
        http::requestTls("GET", rig.https("/whoami"), {{"X-Test", "hello"}}, {}, pki.client());
    INFO((res ? "" : res.error().what()));
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == "cn=edge-1 x=hello");
    CHECK(http::findHeader(res->headers, "x-served-by") == "edge-test");
    CHECK(http::findHeader(res->headers, "content-length") == std::to_string(res->body.size()));
    CHECK_FALSE(http::findHeader(res->headers, "x-bad"));
    CHECK_FALSE(http::findHeader(res->headers, "x-injected"));

    SECTION("plain HTTP on the same server has no peer CN") {
        auto plain = http::request("GET", rig.http("/whoami"));
        REQUIRE(plain);
        CHECK(plain->body == "cn= x=-");
    }
}

TEST_CASE("HTTPS: a client without a certificate is refused before the handler", "[http][tls]") {
    Pki pki;
    TlsRig rig(pki.server(), whoami);
    auto res = http::requestTls("GET", rig.https("/whoami"), {}, {}, {pki.crt("ca"), {}, {}},
                                {std::chrono::seconds(3)});
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == SharedErrc::kHttp);
    CHECK(rig.handled == 0);
}

TEST_CASE("HTTPS: a client certificate from another CA is refused before the handler",
          "[http][tls]") {
    Pki pki;
    TlsRig rig(pki.server(), whoami);
    auto res = http::requestTls("GET", rig.https("/whoami"), {}, {}, pki.client("rogue-client"),
                                {std::chrono::seconds(3)});
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == SharedErrc::kHttp);
    CHECK(rig.handled == 0);
}

TEST_CASE("HTTPS: the client refuses a server it cannot verify", "[http][tls]") {
    Pki pki;
    SECTION("a server certificate from a CA the client does not trust") {
        TlsRig rig(pki.server("rogue-server"), whoami);
        auto res = http::requestTls("GET", rig.https("/whoami"), {}, {}, pki.client(),
                                    {std::chrono::seconds(3)});
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == SharedErrc::kHttp);
        CHECK_THAT(res.error().what(), Catch::Contains("tls handshake") &&
                                           Catch::Contains("server certificate: unable to get"));
        CHECK(rig.handled == 0);
    }
    SECTION("a trusted server certificate for another host name") {
        TlsRig rig(pki.server(), whoami);
        auto res =
            http::requestTls("GET", "https://localhost:" + std::to_string(rig.tls_port) + "/", {},
                             {}, pki.client(), {std::chrono::seconds(3)});
        REQUIRE_FALSE(res);
        CHECK_THAT(res.error().what(),
                   Catch::Contains("tls handshake") && Catch::Contains("hostname mismatch"));
        CHECK(rig.handled == 0);
    }
}

TEST_CASE("HTTPS: a connection that never handshakes is closed after the handshake timeout",
          "[http][tls]") {
    Pki pki;
    auto options = pki.server();
    options.handshake_timeout = std::chrono::milliseconds(300);
    TlsRig rig(options, whoami);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(rig.tls_port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const auto started = std::chrono::steady_clock::now();
    char byte = 0;
    const auto n = ::recv(fd, &byte, 1, 0);
    const auto took = std::chrono::steady_clock::now() - started;
    ::close(fd);
    CHECK(n <= 0);
    CHECK(took < std::chrono::seconds(3));
}

TEST_CASE("HTTPS: unusable certificate files are errors naming the file", "[http][tls]") {
    Pki pki;
    AsioEventLoop loop;
    http::BeastHttpServer server(loop, whoami);
    auto options = pki.server();
    options.key = pki.dir() / "missing.key";
    auto res = server.listenTls("127.0.0.1", 0, options);
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == SharedErrc::kInvalidArgument);
    CHECK_THAT(res.error().what(), Catch::Contains("missing.key"));

    options = pki.server();
    options.key = pki.key("client");  // not the certificate's key
    CHECK_FALSE(server.listenTls("127.0.0.1", 0, options));

    auto client =
        http::requestTls("GET", "https://127.0.0.1:1/", {}, {}, {pki.dir() / "nope.crt", {}, {}});
    REQUIRE_FALSE(client);
    CHECK_THAT(client.error().what(), Catch::Contains("nope.crt"));
    CHECK_FALSE(http::requestTls("GET", "http://127.0.0.1:1/", {}, {}, pki.client()));
    CHECK_FALSE(
        http::requestTls("GET", "https://127.0.0.1:1/", {{"Bad Name", "x"}}, {}, pki.client()));
}

TEST_CASE("BeastHttpServer: HEAD gets the fields with Content-Length and no body", "[http]") {
    Pki pki;
    TlsRig rig(pki.server(), whoami);
    auto res = http::request("HEAD", rig.http("/whoami"), {}, {std::chrono::seconds(3)});
    INFO((res ? "" : res.error().what()));
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body.empty());
    CHECK(http::findHeader(res->headers, "Content-Length") ==
          std::to_string(std::string("cn= x=-").size()));
}

TEST_CASE("downloadTo: a file body streams to the sink in chunks, over HTTPS and HTTP",
          "[http][tls]") {
    Pki pki;
    test::TempDir dir;
    const std::string content = pattern(5u << 20);
    test::writeFile(dir / "big.bin", content);
    TlsRig rig(pki.server(), fileHandler(dir / "big.bin"));
    const auto tls = pki.client();
    // A response buffer far smaller than the body: streaming must not buffer the whole body.
    const http::ClientOptions options{std::chrono::seconds(5), 4096};

    for (const auto& url : {rig.https("/file"), rig.http("/file")}) {
        INFO(url);
        std::string received;
        int chunks = 0;
        int heads = 0;
        auto res = http::downloadTo(
            url, {}, &tls, options,
            [&](std::string_view chunk) {
                ++chunks;
                received.append(chunk);
                return Status{};
            },
            content.size(),
            [&](const http::StreamResult& head) {
                ++heads;
                CHECK(head.status == 200);
                CHECK(received.empty());
                return Status{};
            });
        INFO((res ? "" : res.error().what()));
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(res->body_bytes == content.size());
        CHECK(http::findHeader(res->headers, "Content-Length") == std::to_string(content.size()));
        CHECK(heads == 1);
        CHECK(chunks > 1);
        CHECK(received == content);
    }
}

TEST_CASE("downloadTo: a lent buffer receives the body in place, over HTTPS and HTTP",
          "[http][tls]") {
    Pki pki;
    test::TempDir dir;
    const std::string content = pattern((3u << 20) + 777);
    test::writeFile(dir / "big.bin", content);
    TlsRig rig(pki.server(), fileHandler(dir / "big.bin"));
    const auto tls = pki.client();

    for (const auto& url : {rig.https("/file"), rig.http("/file")}) {
        INFO(url);
        // The lender hands out at most 100000 bytes at a time, at a new place in its memory
        // each time; every byte must arrive where it was read and in order.
        std::string memory(content.size() + 4096, '\0');
        std::size_t next = 0;                // where the next loan starts
        std::span<char> loan;
        std::size_t loans = 0;
        std::size_t in_place = 0;            // bytes the sink found inside the last loan
        std::string received;
        const http::BodyBuffer lend = [&](std::size_t max) {
            CHECK(max > 0);
            ++loans;
            loan = std::span<char>(memory.data() + next, std::min<std::size_t>(max, 100000));
            return loan;
        };
        auto res = http::downloadTo(
            url, {}, &tls, {},
            [&](std::string_view chunk) {
                if (!loan.empty() && chunk.data() == loan.data()) {
                    CHECK(chunk.size() <= loan.size());
                    in_place += chunk.size();
                    next += chunk.size();
                }
                received.append(chunk);
                return Status{};
            },
            content.size(), {}, lend);
        INFO((res ? "" : res.error().what()));
        REQUIRE(res);
        CHECK(res->body_bytes == content.size());
        CHECK(received == content);
        CHECK(loans >= content.size() / 100000);
        // Only what came with the header was read elsewhere (into the header's buffer).
        CHECK(in_place + 64 * 1024 >= content.size());
        CHECK(std::string_view(memory.data(), in_place) ==
              std::string_view(content).substr(content.size() - in_place));
    }

    // A lender with nothing to lend at times: those reads go to a buffer of downloadTo's own.
    for (const auto& url : {rig.https("/file"), rig.http("/file")}) {
        INFO(url);
        std::string memory(64 * 1024, '\0');
        int calls = 0;
        std::size_t lent_bytes = 0;  // bytes that arrived in the lent memory
        std::string received;
        auto res = http::downloadTo(
            url, {}, &tls, {},
            [&](std::string_view chunk) {
                if (chunk.data() == memory.data()) lent_bytes += chunk.size();
                received.append(chunk);
                return Status{};
            },
            content.size(), {},
            [&](std::size_t max) {
                return ++calls % 3 == 0 ? std::span<char>()
                                        : std::span<char>(memory.data(), std::min(max, memory.size()));
            });
        INFO((res ? "" : res.error().what()));
        REQUIRE(res);
        CHECK(received == content);
        CHECK(calls > 3);
        CHECK(lent_bytes > 0);
        CHECK(lent_bytes < content.size());
    }
}

TEST_CASE("downloadTo: limits, error statuses and sink errors", "[http]") {
    Pki pki;
    test::TempDir dir;
    const std::string content = pattern(100000);
    test::writeFile(dir / "f.bin", content);
    TlsRig rig(pki.server(), fileHandler(dir / "f.bin"));
    std::string received;
    const auto sink = [&](std::string_view chunk) {
        received.append(chunk);
        return Status{};
    };

    SECTION("a declared body over max_body fails before any byte reaches the sink") {
        auto res = http::downloadTo(rig.http("/file"), {}, nullptr, {}, sink, content.size() - 1);
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == SharedErrc::kHttp);
        CHECK_THAT(res.error().what(), Catch::Contains("more than"));
        CHECK(received.empty());
    }
    SECTION("an error status goes to error_body, not the sink") {
        auto res = http::downloadTo(rig.http("/nope"), {}, nullptr, {}, sink, 10);
        REQUIRE(res);
        CHECK(res->status == 404);
        CHECK_THAT(res->error_body, Catch::Contains("no such file"));
        CHECK(received.empty());
    }
    SECTION("an error from the sink stops the download and is returned") {
        auto res = http::downloadTo(
            rig.http("/file"), {}, nullptr, {},
            [](std::string_view) -> Status { return fail(SharedErrc::kIo, "disk full"); },
            content.size());
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == SharedErrc::kIo);
        CHECK_THAT(res.error().what(), Catch::Contains("disk full") && Catch::Contains("/file"));
    }
    SECTION("an error from the head check stops before the body") {
        auto res = http::downloadTo(rig.http("/file"), {}, nullptr, {}, sink, content.size(),
                                    [](const http::StreamResult&) -> Status {
                                        return fail(SharedErrc::kHttp, "no thanks");
                                    });
        REQUIRE_FALSE(res);
        CHECK_THAT(res.error().what(), Catch::Contains("no thanks"));
        CHECK(received.empty());
    }
    SECTION("https without TLS options, and other schemes, are refused") {
        auto res = http::downloadTo(rig.https("/file"), {}, nullptr, {}, sink, content.size());
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == SharedErrc::kInvalidArgument);
        CHECK_FALSE(http::downloadTo("ftp://127.0.0.1/file", {}, nullptr, {}, sink, 1));
    }
}

TEST_CASE("downloadTo: the idle timeout bounds each wait for body bytes, not the download",
          "[http]") {
    const std::string content = pattern(64000);
    const auto head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(content.size()) +
                      "\r\nConnection: close\r\n\r\n";
    const http::ClientOptions options{std::chrono::milliseconds(400), 4096};
    std::string received;
    const auto sink = [&](std::string_view chunk) {
        received.append(chunk);
        return Status{};
    };

    SECTION("slow but steady: 8 pieces 150 ms apart, 1.2 s in all, succeed") {
        OneShotServer server([&](int fd) {
            OneShotServer::sendAll(fd, head);
            for (std::size_t i = 0; i < 8; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(150));
                OneShotServer::sendAll(fd, std::string_view(content).substr(i * 8000, 8000));
            }
        });
        auto res = http::downloadTo(server.url(), {}, nullptr, options, sink, content.size());
        INFO((res ? "" : res.error().what()));
        REQUIRE(res);
        CHECK(received == content);
    }
    SECTION("a body that stalls half-way is a timeout; the sink has the first half") {
        std::promise<void> finished;
        OneShotServer server([&](int fd) {
            OneShotServer::sendAll(fd, head + content.substr(0, 32000));
            finished.get_future().wait_for(std::chrono::seconds(5));
        });
        const auto start = std::chrono::steady_clock::now();
        auto res = http::downloadTo(server.url(), {}, nullptr, options, sink, content.size());
        const auto took = std::chrono::steady_clock::now() - start;
        finished.set_value();
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == SharedErrc::kTimeout);
        CHECK_THAT(res.error().what(), Catch::Contains("receive body"));
        CHECK(received == content.substr(0, 32000));
        CHECK(took >= std::chrono::milliseconds(400));
        CHECK(took < std::chrono::seconds(3));
    }
}

TEST_CASE("downloadTo: chunked and close-delimited bodies arrive whole through the parser",
          "[http]") {
    const std::string content = pattern(300000);
    std::string received;
    const auto sink = [&](std::string_view chunk) {
        received.append(chunk);
        return Status{};
    };
    SECTION("chunked") {
        OneShotServer server([&](int fd) {
            OneShotServer::sendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                       "Connection: close\r\n\r\n");
            for (std::size_t at = 0; at < content.size(); at += 70000) {
                const auto piece = std::string_view(content).substr(at, 70000);
                char size[32];
                std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
                OneShotServer::sendAll(fd, size);
                OneShotServer::sendAll(fd, piece);
                OneShotServer::sendAll(fd, "\r\n");
            }
            OneShotServer::sendAll(fd, "0\r\n\r\n");
        });
        auto res = http::downloadTo(server.url(), {}, nullptr, {}, sink, content.size());
        INFO((res ? "" : res.error().what()));
        REQUIRE(res);
        CHECK(res->body_bytes == content.size());
        CHECK(received == content);
    }
    SECTION("close-delimited, cut at max_body") {
        OneShotServer server([&](int fd) {
            OneShotServer::sendAll(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + content);
        });
        auto res = http::downloadTo(server.url(), {}, nullptr, {}, sink, 100000);
        REQUIRE_FALSE(res);
        CHECK_THAT(res.error().what(), Catch::Contains("more than 100000 bytes"));
        CHECK(received == content.substr(0, 100000));
    }
}

TEST_CASE("BeastHttpServer: a client that stops reading a file body is cut off after "
          "request_timeout",
          "[http]") {
    test::TempDir dir;
    const std::size_t size = 64u << 20;  // far more than the socket buffers hold
    {
        std::ofstream out(dir / "big.bin", std::ios::binary);
        const std::string block = pattern(1u << 20);
        for (std::size_t i = 0; i < size / block.size(); ++i) out << block;
    }
    AsioEventLoop loop;
    http::BeastHttpServer server(loop, fileHandler(dir / "big.bin"),
                                 {1u << 20, std::chrono::milliseconds(300)});
    auto port = server.listen("127.0.0.1", 0);
    REQUIRE(port);
    std::thread serving([&] { loop.run(); });

    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(*port));
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    const std::string request = "GET /file HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // reads nothing meanwhile
    std::size_t got = 0;
    std::vector<char> buffer(1u << 20);
    for (;;) {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, 3000) <= 0) break;  // would mean the server kept the connection
        const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    loop.post([&] { server.stop(); });
    loop.stop();
    serving.join();
    CHECK(got > 0);
    CHECK(got < size);
}
