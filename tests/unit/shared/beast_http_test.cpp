#include <catch2/catch.hpp>

#include <thread>

#include "shared/http/beast/beast_server.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"

using namespace edge;

namespace {

/// A BeastHttpServer on a real loopback socket, its loop on a background thread.
struct ServerRig {
    AsioEventLoop loop;
    std::thread::id handler_thread;
    http::BeastHttpServer server{loop,
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
                                 http::ServerOptions{1024, std::chrono::seconds(5)}};
    int port = 0;
    std::thread thread;

    ServerRig() {
        auto bound = server.listen("127.0.0.1", 0);
        REQUIRE(bound);
        port = *bound;
        thread = std::thread([this] { loop.run(); });
    }
    ~ServerRig() {
        loop.post([this] { server.stop(); });
        loop.stop();
        thread.join();
    }
    std::string url(std::string_view path) const {
        return "http://127.0.0.1:" + std::to_string(port) + std::string(path);
    }
};

}  // namespace

TEST_CASE("BeastHttpServer: requests reach the handler on the loop thread with path, query, body") {
    ServerRig rig;
    auto res = http::request("POST", rig.url("/echo?q=hi%20there"), "payload");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == "POST payload hi there");
    CHECK(rig.handler_thread == rig.thread.get_id());
}

TEST_CASE("BeastHttpServer: bad requests get status codes, never a crash") {
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

TEST_CASE("http::request: transport failures are errors with the URL") {
    auto res = http::request("GET", "http://127.0.0.1:1/x", {}, {std::chrono::seconds(2)});
    REQUIRE_FALSE(res);
    CHECK_THAT(res.error().what(), Catch::Contains("127.0.0.1:1"));
    CHECK_FALSE(http::request("GET", "ftp://example/x"));
}
