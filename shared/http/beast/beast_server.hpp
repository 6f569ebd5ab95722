#pragma once
// HttpServer on Boost.Beast, sharing the program's io_context (handlers run on the loop thread).
// One server may listen on a TCP port, a TLS port and a Unix domain socket at once; every
// connection, whatever its transport, gets the same handler, limits and timeouts.
// Responses to HEAD carry the fields (Content-Length included) but never a body. A Response with
// a FileBody is streamed from the file; each chunk written gets a fresh request_timeout.
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

    /// Listens for HTTPS with mutual TLS on host:port (0: any free port); returns the bound
    /// port. Clients must present a certificate that chains to tls.client_ca (TLS 1.2+) and
    /// finish the handshake within tls.handshake_timeout, else the connection is closed before
    /// any request is read. The handler sees the certificate's CN in Request::peer_cn.
    /// Unreadable or mismatched certificate/key files are kInvalidArgument. At most one TLS
    /// listener per server.
    [[nodiscard]] Result<int> listenTls(const std::string& host, int port,
                                        const TlsServerOptions& tls);

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
