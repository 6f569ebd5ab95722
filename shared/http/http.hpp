#pragma once
// A small HTTP/1.1 server and client (Beast adapters in shared/http/beast/).
// Server contract: the handler runs on the EventLoop thread, one request at a time per
// connection; requests over max_body_bytes get 413 without reaching the handler; malformed
// requests get 400. The client is synchronous with a deadline, for CLIs and tests; over a Unix
// domain socket it can also keep one connection alive across requests (UnixConnection).
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "shared/core/error.hpp"

namespace edge::http {

struct Request {
    std::string method;  // "GET", "POST", …
    std::string path;    // decoded path, without the query
    std::map<std::string, std::string> query;
    std::string body;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
};

using Handler = std::function<Response(const Request&)>;

/// JSON error body {"error": {"code": status, "message": message}}.
[[nodiscard]] Response errorResponse(int status, std::string_view message);

class HttpServer {
public:
    virtual ~HttpServer() = default;
    /// Binds and starts accepting; returns the bound port (useful with port 0).
    [[nodiscard]] virtual Result<int> listen(const std::string& host, int port) = 0;
    virtual void stop() = 0;
};

struct ClientOptions {
    std::chrono::milliseconds timeout{10000};
    std::size_t max_response_bytes = 64u << 20;
};

/// One request to url ("http://127.0.0.1:8080/v1/devices"); any status is a Response, only
/// transport failures are Errors (kHttp, kTimeout).
[[nodiscard]] Result<Response> request(const std::string& method, const std::string& url,
                                       const std::string& body = {},
                                       const ClientOptions& options = {});

/// One request over a Unix domain socket; target is the origin-form path ("/v1/admit"), with
/// its query. Same contract as request(); an invalid method or target is kInvalidArgument.
[[nodiscard]] Result<Response> requestUnix(const std::filesystem::path& socket,
                                           const std::string& method, const std::string& target,
                                           const std::string& body = {},
                                           const ClientOptions& options = {});

/// A persistent HTTP/1.1 connection over a Unix socket (keep-alive), synchronous. Not thread-safe.
/// Each send() is bounded by options.timeout. When the server has closed the idle connection
/// (its keep-alive timeout) before a request is written, send() reconnects once by itself; a
/// request that may have reached the server is never resent. After a transport error or a
/// "Connection: close" response, the next send() opens a new connection.
class UnixConnection {
public:
    /// Connects now, so that a missing or refused socket is reported here.
    [[nodiscard]] static Result<std::unique_ptr<UnixConnection>> open(
        const std::filesystem::path& socket, ClientOptions options = {});
    virtual ~UnixConnection() = default;
    [[nodiscard]] virtual Result<Response> send(const std::string& method,
                                                const std::string& target,
                                                const std::string& body = {}) = 0;
};

}  // namespace edge::http
