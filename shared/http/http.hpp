#pragma once
// A small HTTP/1.1 server and client (Beast adapters in shared/http/beast/).
// Server contract: the handler runs on the EventLoop thread, one request at a time per
// connection; requests over max_body_bytes get 413 without reaching the handler; malformed
// requests get 400. The client is synchronous with a deadline, for CLIs and tests; over a Unix
// domain socket it can also keep one connection alive across requests (UnixConnection).
// HTTPS is mutual TLS on both sides (TLS 1.2+, certificates checked against configured CAs);
// downloadTo() streams large bodies to a sink instead of buffering them.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/core/error.hpp"

namespace edge::http {

/// Header fields in the order received or to be sent; names compare case-insensitively.
using Headers = std::vector<std::pair<std::string, std::string>>;

/// The value of the first field named name (case-insensitive), if any.
[[nodiscard]] std::optional<std::string> findHeader(const Headers& headers, std::string_view name);

/// An open file whose bytes [offset, offset + length) are a response body: the server streams
/// them from disk in chunks, never holding the whole body. Owns the descriptor (closed with the
/// last Response that refers to it). If the file turns out shorter than length while it is
/// sent, the connection is closed (the client sees a truncated body).
class FileBody {
public:
    /// Takes ownership of fd (open for reading).
    FileBody(int fd, std::uint64_t offset, std::uint64_t length)
        : fd_(fd), offset_(offset), length_(length) {}
    ~FileBody();
    FileBody(const FileBody&) = delete;
    FileBody& operator=(const FileBody&) = delete;

    [[nodiscard]] int fd() const { return fd_; }
    [[nodiscard]] std::uint64_t offset() const { return offset_; }
    [[nodiscard]] std::uint64_t length() const { return length_; }

private:
    int fd_;
    std::uint64_t offset_;
    std::uint64_t length_;
};

struct Request {
    std::string method;  // "GET", "POST", …
    std::string path;    // decoded path, without the query
    std::map<std::string, std::string> query;
    std::string body;
    Headers headers;  // as received
    /// Common name of the client certificate verified by the TLS handshake (listenTls); empty
    /// on plain transports.
    std::string peer_cn;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    /// Extra header fields (Content-Range, ETag, …). The server sets Server, Content-Type,
    /// Content-Length and Connection itself; fields with those names, or with a name that is
    /// not a token or a value with control characters, are dropped.
    Headers headers;
    /// When set, the body is streamed from this file and `body` is ignored.
    std::shared_ptr<FileBody> file;
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

/// Server side of mutual TLS. Every client must present a certificate that chains to client_ca;
/// the handshake must finish within handshake_timeout.
struct TlsServerOptions {
    std::filesystem::path cert;       // PEM chain, leaf first
    std::filesystem::path key;        // PEM private key of cert
    std::filesystem::path client_ca;  // PEM CA certificate(s) that client certificates chain to
    std::chrono::milliseconds handshake_timeout{10000};
};

/// Client side of TLS: the server certificate must chain to ca and name the URL's host (DNS
/// name or IP address in subjectAltName). cert/key, when set, are presented to the server.
struct TlsClientOptions {
    std::filesystem::path ca;
    std::filesystem::path cert;
    std::filesystem::path key;
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

/// One request to an https:// url with extra header fields (names must be tokens, values free of
/// control characters, else kInvalidArgument). Same contract as request(); a TLS failure
/// (untrusted or misnamed server certificate, client certificate refused) is kHttp, with the
/// stage in the message. The whole response is buffered (at most options.max_response_bytes).
[[nodiscard]] Result<Response> requestTls(const std::string& method, const std::string& url,
                                          const Headers& headers, const std::string& body,
                                          const TlsClientOptions& tls,
                                          const ClientOptions& options = {});

/// What downloadTo() learned: the response's status and header fields; the body of a non-2xx
/// response (at most 64 KiB, never passed to the sink); the body bytes handed to the sink.
struct StreamResult {
    int status = 0;
    Headers headers;
    std::string error_body;
    std::uint64_t body_bytes = 0;
};

/// Receives body bytes in order, as they arrive. An error stops the download; downloadTo()
/// returns that error.
using BodySink = std::function<Status(std::string_view chunk)>;
/// Sees the status and header fields before any body byte reaches the sink (body_bytes is 0);
/// an error stops the download and is returned.
using HeadCheck = std::function<Status(const StreamResult& head)>;
/// Lends the memory the next body bytes are read into: a span of at most max bytes (max > 0;
/// an empty span: downloadTo()'s own buffer this time). The sink's next chunk is then a prefix
/// of that span, so a sink that keeps the bytes finds them in place (StreamWriter::prepare()
/// and append() take them without a copy). Used for bodies of a declared length; the span must
/// stay valid until the sink is called or downloadTo() returns.
using BodyBuffer = std::function<std::span<char>(std::size_t max)>;

/// GET url (http:// or https://; https needs tls) with extra header fields, streaming a 2xx
/// response body to sink chunk by chunk (the body is never held whole). Bodies of other
/// statuses go to error_body instead. At most max_body bytes ever reach the sink: a declared
/// Content-Length over max_body fails before the body is read; an undeclared (chunked or
/// close-delimited) body is cut after exactly max_body bytes and fails. Both are kHttp errors
/// whose message says "more than <max_body> bytes".
/// options.timeout bounds connecting and the wait for the header, then each wait for more body
/// bytes (an idle timeout: a slow but steady download of any size succeeds);
/// options.max_response_bytes is not used. A body that ends early is a kHttp error; the sink
/// has seen everything that arrived. With body_buffer, a body of declared length is read into
/// the memory it lends instead of a buffer of downloadTo()'s own.
[[nodiscard]] Result<StreamResult> downloadTo(const std::string& url, const Headers& headers,
                                              const TlsClientOptions* tls,
                                              const ClientOptions& options, const BodySink& sink,
                                              std::uint64_t max_body,
                                              const HeadCheck& on_head = {},
                                              const BodyBuffer& body_buffer = {});

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
