#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "shared/http/beast/beast_server.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "tests/support/loop_thread.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;

namespace {

struct RigConfig {
    bool tcp = true;
    std::filesystem::path unix_socket;  // empty: no Unix listener
    http::ServerOptions options{1024, std::chrono::seconds(5)};
};

/// A BeastHttpServer on real sockets (loopback TCP and/or a Unix socket), its loop on a
/// background thread.
struct ServerRig {
    AsioEventLoop loop;
    std::thread::id handler_thread;
    http::BeastHttpServer server;
    int port = 0;
    test::LoopThread runner{loop};

    explicit ServerRig(const RigConfig& config = {})
        : server(
              loop,
              [this](const http::Request& r) {
                  handler_thread = std::this_thread::get_id();
                  if (r.path == "/echo") {
                      return http::Response{200, "text/plain",
                                            r.method + " " + r.body + " " +
                                                (r.query.contains("q") ? r.query.at("q") : "")};
                  }
                  if (r.path == "/throw") throw std::runtime_error("boom");
                  return http::errorResponse(404, "no such endpoint");
              },
              config.options) {
        if (config.tcp) {
            auto bound = server.listen("127.0.0.1", 0);
            REQUIRE(bound);
            port = *bound;
        }
        if (!config.unix_socket.empty()) {
            auto listening = server.listenUnix(config.unix_socket);
            INFO((listening ? "" : listening.error().what()));
            REQUIRE(listening);
        }
        runner.start();
    }
    ~ServerRig() {
        runner.stop([this] { server.stop(); });
    }
    std::string url(std::string_view path) const {
        return "http://127.0.0.1:" + std::to_string(port) + std::string(path);
    }
    /// Runs server.stop() on the loop thread and waits for it.
    void stopServer() {
        std::promise<void> done;
        loop.post([&] {
            server.stop();
            done.set_value();
        });
        done.get_future().wait();
    }
};

sockaddr_un unixAddress(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.native().size() < sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, path.c_str(), path.native().size() + 1);
    return addr;
}

/// A plain socket bound at path (listening when asked); the caller closes it.
int bindUnix(const std::filesystem::path& path, bool listening) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    const auto addr = unixAddress(path);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
    if (listening) REQUIRE(::listen(fd, 4) == 0);
    return fd;
}

/// Writes bytes to the Unix socket at path and returns all the server sends until it closes.
std::string rawExchange(const std::filesystem::path& path, std::string_view bytes) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    const auto addr = unixAddress(path);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
    std::string received;
    char chunk[4096];
    for (ssize_t n; (n = ::recv(fd, chunk, sizeof(chunk), 0)) > 0;)
        received.append(chunk, static_cast<std::size_t>(n));
    ::close(fd);
    return received;
}

std::string readFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

unsigned modeOf(const std::filesystem::path& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("BeastHttpServer: requests reach the handler on the loop thread with path, query, body",
          "[http]") {
    ServerRig rig;
    auto res = http::request("POST", rig.url("/echo?q=hi%20there"), "payload");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == "POST payload hi there");
    CHECK(rig.handler_thread == rig.runner.id());
}

TEST_CASE("BeastHttpServer: bad requests get status codes, never a crash", "[http]") {
    ServerRig rig;
    SECTION("unknown path is 404 with a JSON error") {
        auto res = http::request("GET", rig.url("/nope"));
        REQUIRE(res);
        CHECK(res->status == 404);
        CHECK(res->body.find("no such endpoint") != std::string::npos);
    }
    SECTION("a body over the limit is 413") {
        auto res = http::request("POST", rig.url("/echo"), std::string(4096, 'x'));
        REQUIRE(res);
        CHECK(res->status == 413);
    }
    SECTION("a handler that throws is a 500 and the server keeps serving") {
        auto res = http::request("GET", rig.url("/throw"));
        REQUIRE(res);
        CHECK(res->status == 500);
        CHECK(http::request("GET", rig.url("/echo"))->status == 200);
    }
}

TEST_CASE("http::request: transport failures are errors with the URL", "[http]") {
    auto res = http::request("GET", "http://127.0.0.1:1/x", {}, {std::chrono::seconds(2)});
    REQUIRE_FALSE(res);
    CHECK_THAT(res.error().what(), Catch::Contains("127.0.0.1:1"));
    CHECK_FALSE(http::request("GET", "ftp://example/x"));
    auto bad_method = http::request("GE T", "http://127.0.0.1:1/x");
    REQUIRE_FALSE(bad_method);
    CHECK(bad_method.error().code() == SharedErrc::kInvalidArgument);
}

TEST_CASE(
    "BeastHttpServer over a Unix socket: requests reach the handler with method, path, query, body",
    "[http]") {
    test::TempDir dir;
    ServerRig rig({.tcp = false, .unix_socket = dir / "edge.sock"});
    auto res = http::requestUnix(dir / "edge.sock", "POST", "/echo?q=hi%20there", "payload");
    INFO((res ? "" : res.error().what()));
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->content_type == "text/plain");
    CHECK(res->body == "POST payload hi there");
    CHECK(rig.handler_thread == rig.runner.id());

    auto get = http::requestUnix(dir / "edge.sock", "GET", "/echo");
    REQUIRE(get);
    CHECK(get->body == "GET  ");
}

TEST_CASE("UnixConnection: 200 keep-alive requests all succeed over one connection", "[http]") {
    test::TempDir dir;
    ServerRig rig({.tcp = false, .unix_socket = dir / "edge.sock"});
    auto connection = http::UnixConnection::open(dir / "edge.sock");
    REQUIRE(connection);
    int ok = 0;
    for (int i = 0; i < 200; ++i) {
        auto res =
            (*connection)->send("POST", "/echo?q=" + std::to_string(i), "n" + std::to_string(i));
        if (res && res->status == 200 &&
            res->body == "POST n" + std::to_string(i) + " " + std::to_string(i))
            ++ok;
    }
    CHECK(ok == 200);
    CHECK(rig.server.connectionsAccepted() == 1);
}

TEST_CASE("UnixConnection: after the server closed the idle connection, send reconnects by itself",
          "[http]") {
    test::TempDir dir;
    ServerRig rig({.tcp = false,
                   .unix_socket = dir / "edge.sock",
                   .options = {1024, std::chrono::milliseconds(200)}});
    auto connection = http::UnixConnection::open(dir / "edge.sock");
    REQUIRE(connection);
    REQUIRE((*connection)->send("GET", "/echo")->status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(600));  // past the server's idle timeout
    auto res = (*connection)->send("GET", "/echo");
    INFO((res ? "" : res.error().what()));
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(rig.server.connectionsAccepted() == 2);
}

TEST_CASE(
    "BeastHttpServer over a Unix socket: bad requests get status codes and the server keeps "
    "serving",
    "[http]") {
    test::TempDir dir;
    const auto socket = dir / "edge.sock";
    ServerRig rig({.tcp = false, .unix_socket = socket});

    SECTION("a body over the limit is 413") {
        auto res = http::requestUnix(socket, "POST", "/echo", std::string(4096, 'x'));
        REQUIRE(res);
        CHECK(res->status == 413);
    }
    SECTION("a body far over the limit is 413 too, though the server stops reading it") {
        auto res = http::requestUnix(socket, "POST", "/echo", std::string(4u << 20, 'x'));
        INFO((res ? "" : res.error().what()));
        REQUIRE(res);
        CHECK(res->status == 413);
    }
    SECTION("on a keep-alive connection, a 413 closes it and the next send reconnects") {
        auto connection = http::UnixConnection::open(socket);
        REQUIRE(connection);
        CHECK((*connection)->send("POST", "/echo", std::string(4096, 'x'))->status == 413);
        auto next = (*connection)->send("POST", "/echo", "small");
        REQUIRE(next);
        CHECK(next->status == 200);
        CHECK(rig.server.connectionsAccepted() == 2);
    }
    SECTION("garbage bytes are a 400, and the next client is served") {
        const auto reply = rawExchange(socket, std::string("\x00\xff\xfe garbage\r\n\r\n", 15));
        CHECK_THAT(reply, Catch::StartsWith("HTTP/1.1 400"));
        auto res = http::requestUnix(socket, "GET", "/echo");
        REQUIRE(res);
        CHECK(res->status == 200);
    }
    SECTION("a request line without a version is a 400") {
        CHECK_THAT(rawExchange(socket, "GET /echo\r\n\r\n"), Catch::StartsWith("HTTP/1.1 400"));
    }
    SECTION("a handler that throws is a 500 and the same connection keeps serving") {
        auto connection = http::UnixConnection::open(socket);
        REQUIRE(connection);
        auto res = (*connection)->send("GET", "/throw");
        REQUIRE(res);
        CHECK(res->status == 500);
        CHECK((*connection)->send("GET", "/echo")->status == 200);
        CHECK(http::requestUnix(socket, "GET", "/echo")->status == 200);
        CHECK(rig.server.connectionsAccepted() == 2);
    }
}

TEST_CASE("BeastHttpServer::listenUnix: a stale socket file is replaced", "[http]") {
    test::TempDir dir;
    const auto socket = dir / "edge.sock";
    ::close(bindUnix(socket, false));  // what a crashed daemon leaves behind
    REQUIRE(std::filesystem::is_socket(socket));
    ServerRig rig({.tcp = false, .unix_socket = socket});
    auto res = http::requestUnix(socket, "GET", "/echo");
    REQUIRE(res);
    CHECK(res->status == 200);
}

TEST_CASE("BeastHttpServer::listenUnix: what is not a stale socket is refused and left untouched",
          "[http]") {
    test::TempDir dir;
    const auto path = dir / "edge.sock";
    AsioEventLoop loop;
    http::BeastHttpServer server(loop, [](const http::Request&) { return http::Response{}; });

    SECTION("a regular file") {
        std::ofstream(path) << "keep me";
        auto res = server.listenUnix(path);
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == SharedErrc::kInvalidArgument);
        CHECK_THAT(res.error().what(),
                   Catch::Contains(path.string()) && Catch::Contains("not a socket"));
        CHECK(std::filesystem::is_regular_file(path));
        CHECK(readFile(path) == "keep me");
    }
    SECTION("a socket another server listens on") {
        const int other = bindUnix(path, true);
        auto res = server.listenUnix(path);
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == SharedErrc::kUnavailable);
        CHECK(std::filesystem::is_socket(path));
        ::close(other);
    }
    SECTION("a directory") {
        std::filesystem::create_directory(path);
        REQUIRE_FALSE(server.listenUnix(path));
        CHECK(std::filesystem::is_directory(path));
    }
    SECTION("a path too long for a socket address") {
        auto res = server.listenUnix(dir / std::string(120, 'x'));
        REQUIRE_FALSE(res);
        CHECK(res.error().code() == SharedErrc::kInvalidArgument);
    }
    SECTION("a second Unix socket on the same server") {
        REQUIRE(server.listenUnix(path));
        auto res = server.listenUnix(dir / "second.sock");
        REQUIRE_FALSE(res);
        CHECK_FALSE(std::filesystem::exists(dir / "second.sock"));
    }
}

TEST_CASE("BeastHttpServer::listenUnix: the socket file gets the requested mode", "[http]") {
    test::TempDir dir;
    AsioEventLoop loop;
    http::BeastHttpServer server(loop, [](const http::Request&) { return http::Response{}; });
    SECTION("0660 by default") {
        REQUIRE(server.listenUnix(dir / "edge.sock"));
        CHECK(modeOf(dir / "edge.sock") == 0660);
    }
    SECTION("as asked") {
        REQUIRE(server.listenUnix(dir / "edge.sock", 0600));
        CHECK(modeOf(dir / "edge.sock") == 0600);
    }
}

TEST_CASE("BeastHttpServer::stop removes the socket file it created, and only that file",
          "[http]") {
    test::TempDir dir;
    const auto socket = dir / "edge.sock";
    ServerRig rig({.tcp = false, .unix_socket = socket});
    REQUIRE(http::requestUnix(socket, "GET", "/echo"));
    SECTION("its own socket is removed") {
        rig.stopServer();
        CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(socket)));
        CHECK_FALSE(http::requestUnix(socket, "GET", "/echo", {}, {std::chrono::seconds(2)}));
    }
    SECTION("a file someone put in its place stays") {
        std::filesystem::remove(socket);
        std::ofstream(socket) << "not yours";
        rig.stopServer();
        CHECK(readFile(socket) == "not yours");
    }
}

TEST_CASE("BeastHttpServer: TCP and a Unix socket at once share the handler", "[http]") {
    test::TempDir dir;
    ServerRig rig({.tcp = true, .unix_socket = dir / "edge.sock"});
    auto over_tcp = http::request("POST", rig.url("/echo?q=tcp"), "a");
    auto over_unix = http::requestUnix(dir / "edge.sock", "POST", "/echo?q=unix", "b");
    REQUIRE(over_tcp);
    REQUIRE(over_unix);
    CHECK(over_tcp->body == "POST a tcp");
    CHECK(over_unix->body == "POST b unix");
    CHECK(http::request("POST", rig.url("/echo"), std::string(4096, 'x'))->status == 413);
    CHECK(http::requestUnix(dir / "edge.sock", "POST", "/echo", std::string(4096, 'x'))->status ==
          413);
    CHECK(rig.server.connectionsAccepted() == 4);
}

TEST_CASE("http::requestUnix and UnixConnection: bad input and missing sockets are errors",
          "[http]") {
    test::TempDir dir;
    auto missing = http::UnixConnection::open(dir / "nobody.sock");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == SharedErrc::kHttp);
    CHECK_THAT(missing.error().what(), Catch::Contains("nobody.sock"));

    auto one_shot = http::requestUnix(dir / "nobody.sock", "GET", "/x");
    REQUIRE_FALSE(one_shot);
    CHECK_THAT(one_shot.error().what(), Catch::Contains("nobody.sock"));

    ServerRig rig({.tcp = false, .unix_socket = dir / "edge.sock"});
    auto bad_target = http::requestUnix(dir / "edge.sock", "GET", "/x\r\nX-Injected: 1");
    REQUIRE_FALSE(bad_target);
    CHECK(bad_target.error().code() == SharedErrc::kInvalidArgument);
    auto relative = http::requestUnix(dir / "edge.sock", "GET", "x");
    REQUIRE_FALSE(relative);
    CHECK(relative.error().code() == SharedErrc::kInvalidArgument);
    CHECK_FALSE(http::requestUnix(dir / std::string(120, 'x'), "GET", "/x"));
}

TEST_CASE("http::requestUnix: a server that never answers is a timeout", "[http]") {
    test::TempDir dir;
    const int silent = bindUnix(dir / "silent.sock", true);  // accepts in the backlog, never reads
    const auto started = std::chrono::steady_clock::now();
    auto res =
        http::requestUnix(dir / "silent.sock", "GET", "/x", {}, {std::chrono::milliseconds(300)});
    const auto took = std::chrono::steady_clock::now() - started;
    ::close(silent);
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == SharedErrc::kTimeout);
    CHECK_THAT(res.error().what(), Catch::Contains("receive"));
    CHECK(took < std::chrono::seconds(2));
}
