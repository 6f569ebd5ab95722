#pragma once
// A small HTTP/1.1 server and client (Beast adapters in shared/http/beast/).
// Server contract: the handler runs on the EventLoop thread, one request at a time per
// connection; requests over max_body_bytes get 413 without reaching the handler; malformed
// requests get 400. The client is synchronous with a deadline, for CLIs and tests.
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
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

}  // namespace edge::http
