#pragma once
// Servers for tests of edged's fetcher and OTA plan, on loopback ports: a control plane's
// ArtifactStore behind a real BeastHttpServer, and a raw socket server that misbehaves on purpose.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/artifact_store.hpp"
#include "shared/http/beast/beast_server.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "tests/support/loop_thread.hpp"
#include "tests/support/ports.hpp"
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
    std::vector<std::string> paths;
    std::atomic<bool> ignore_range{false};
    int port = 0;
    int tls_port = 0;
    test::LoopThread runner{loop};

    explicit StoreRig(controlplane::ArtifactStore& s, const TestPki* pki = nullptr)
        : store(s), server(loop, [this](const http::Request& r) {
              auto request = r;
              {
                  std::lock_guard lock(mutex);
                  ranges.push_back(http::findHeader(r.headers, "Range").value_or(""));
                  peers.push_back(r.peer_cn);
                  paths.push_back(r.path);
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
        runner.start();
    }
    ~StoreRig() { runner.stop([this] { server.stop(); }); }
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
    /// How many requests asked for path.
    std::size_t requestsFor(const std::string& path) {
        std::lock_guard lock(mutex);
        return static_cast<std::size_t>(std::count(paths.begin(), paths.end(), path));
    }
};

/// A raw TCP server on a loopback port: for each connection, reads the request head and hands
/// it with the socket to serve(fd, head, index). Records every head.
class RawServer {
public:
    using Serve = std::function<void(int fd, const std::string& head, int index)>;

    explicit RawServer(Serve serve) : serve_(std::move(serve)) {
        listen_fd_ = listenLoopback(port_, 8);
        thread_ = std::thread([this] { run(); });
    }
    ~RawServer() {
        stop_ = true;
        thread_.join();
        ::close(listen_fd_);
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/artifact"; }
    std::vector<std::string> heads() {
        std::lock_guard lock(mutex_);
        return heads_;
    }

    static bool sendAll(int fd, std::string_view data) {
        while (!data.empty()) {
            const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }
    /// The N in "Range: bytes=N-", or 0.
    static std::size_t rangeStart(const std::string& head) {
        const auto at = head.find("Range: bytes=");
        return at == std::string::npos ? 0 : std::stoul(head.substr(at + 13));
    }

private:
    void run() {
        for (int index = 0; !stop_;) {
            pollfd pfd{listen_fd_, POLLIN, 0};
            if (::poll(&pfd, 1, 50) <= 0) continue;
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            std::string head;
            char buffer[4096];
            while (head.find("\r\n\r\n") == std::string::npos) {
                const auto n = ::recv(fd, buffer, sizeof(buffer), 0);
                if (n <= 0) break;
                head.append(buffer, static_cast<std::size_t>(n));
            }
            {
                std::lock_guard lock(mutex_);
                heads_.push_back(head);
            }
            serve_(fd, head, index++);
            ::shutdown(fd, SHUT_RDWR);
            ::close(fd);
        }
    }

    Serve serve_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::vector<std::string> heads_;
    std::thread thread_;
};

}  // namespace edge::test
