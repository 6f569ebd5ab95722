#pragma once
// HttpServer on Boost.Beast, sharing the program's io_context (handlers run on the loop thread).
// One server may listen on a TCP port and on a Unix domain socket at once; every connection,
// whatever its transport, gets the same handler, limits and timeouts.
#include <cstdint>
#include <filesystem>
#include <memory>

#include "shared/http/http.hpp"

namespace edge {
class AsioEventLoop;
}

namespace edge::http {

struct ServerOptions {
    std::size_t max_body_bytes = 1u << 20;
    std::chrono::milliseconds request_timeout{30000};
};

/// Loop thread only (listen*, stop), except connectionsAccepted(). Call listen* before the loop
/// runs or from the loop thread.
class BeastHttpServer final : public HttpServer {
public:
    BeastHttpServer(AsioEventLoop& loop, Handler handler, ServerOptions options = {});
    ~BeastHttpServer() override;
    [[nodiscard]] Result<int> listen(const std::string& host, int port) override;

    /// Listens on a Unix domain socket at path, with permissions mode (umask is not applied).
    /// A socket file already at path is replaced only when no server accepts on it any more
    /// (stale); any other file there, or a live socket, is refused and left untouched.
    /// At most one Unix socket per server.
    [[nodiscard]] Status listenUnix(const std::filesystem::path& path, unsigned mode = 0660);

    /// Closes every listener and removes the socket file listenUnix created (only if it is still
    /// that file). Open connections end after their current request. Final: no listen* after it.
    void stop() override;

    /// Connections accepted so far over every transport. Thread-safe (a counter for metrics).
    [[nodiscard]] std::uint64_t connectionsAccepted() const;

    struct State;  // defined in the .cpp; public only so its helpers can name it

private:
    std::shared_ptr<State> state_;
};

}  // namespace edge::http
