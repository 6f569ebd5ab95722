#pragma once
// A control plane's ArtifactStore behind a real BeastHttpServer on loopback ports, for tests of
// edged's fetcher and OTA plan.
#include <atomic>
#include <catch2/catch.hpp>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/artifact_store.hpp"
#include "shared/http/beast/beast_server.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "tests/support/test_pki.hpp"

namespace edge::test {

/// An ArtifactStore behind a BeastHttpServer (plain and, with a Pki, mutual TLS); records the
/// Range field and peer CN of each request.
struct StoreRig {
    controlplane::ArtifactStore& store;
    AsioEventLoop loop;
    http::BeastHttpServer server;
    std::mutex mutex;
    std::vector<std::string> ranges;  // "" when a request had none
    std::vector<std::string> peers;
    std::atomic<bool> ignore_range{false};
    int port = 0;
    int tls_port = 0;
    std::thread thread;

    explicit StoreRig(controlplane::ArtifactStore& s, const TestPki* pki = nullptr)
        : store(s), server(loop, [this](const http::Request& r) {
              auto request = r;
              {
                  std::lock_guard lock(mutex);
                  ranges.push_back(http::findHeader(r.headers, "Range").value_or(""));
                  peers.push_back(r.peer_cn);
              }
              if (ignore_range) request.headers.clear();
              return store.handle(request);
          }) {
        auto bound = server.listen("127.0.0.1", 0);
        REQUIRE(bound);
        port = *bound;
        if (pki != nullptr) {
            auto tls = server.listenTls("127.0.0.1", 0, pki->server());
            REQUIRE(tls);
            tls_port = *tls;
        }
        thread = std::thread([this] { loop.run(); });
        std::promise<void> running;
        loop.post([&] { running.set_value(); });
        running.get_future().wait();
    }
    ~StoreRig() {
        loop.post([this] { server.stop(); });
        loop.stop();
        thread.join();
    }
    std::string url(std::string_view digest) const {
        return "http://127.0.0.1:" + std::to_string(port) + "/v1/artifacts/" + std::string(digest);
    }
    std::string httpsUrl(std::string_view digest) const {
        return "https://127.0.0.1:" + std::to_string(tls_port) + "/v1/artifacts/" +
               std::string(digest);
    }
    std::vector<std::string> seenRanges() {
        std::lock_guard lock(mutex);
        return ranges;
    }
};

}  // namespace edge::test
