// http::request, requestUnix and UnixConnection on Boost.Beast. Each owns a private io_context
// that runs only while one exchange (connect, write, read) is in flight, under one deadline.
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <optional>
#include <string_view>

#include "shared/http/http.hpp"

namespace edge::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using unix_socket = boost::asio::local::stream_protocol;
using Message = bhttp::request<bhttp::string_body>;

namespace {

// io_context::run_for() gets this much beyond the stream's own deadline, which normally fires
// first; the margin only catches what the deadline does not cover (name resolution).
constexpr std::chrono::milliseconds kRunMargin{500};

bool isToken(std::string_view s) {
    constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
    return !s.empty() && std::ranges::all_of(s, [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               kSymbols.find(c) != std::string_view::npos;
    });
}

/// The request every transport sends. Method and target are checked, so that nothing a caller
/// passes can inject header lines.
Result<Message> makeMessage(const std::string& method, const std::string& target,
                            const std::string& host, const std::string& body, bool keep_alive) {
    if (!isToken(method)) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("bad method '{}'", method));
    }
    if (!boost::urls::parse_origin_form(target)) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("bad target '{}': not an origin-form path", target));
    }
    try {
        Message req;
        req.method_string(method);
        req.target(target);
        req.version(11);
        req.set(bhttp::field::host, host);
        req.set(bhttp::field::user_agent, "edge-client");
        if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
        req.keep_alive(keep_alive);
        req.body() = body;
        req.prepare_payload();  // throws for a few method/body combinations (TRACE with a body)
        return req;
    } catch (const std::exception& e) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("bad request: {}", e.what()));
    }
}

/// What one exchange produced: a response, or the stage that failed and why.
struct Exchange {
    std::string stage = "send";
    beast::error_code ec;
    bool sent = false;  // the request was written completely
    std::optional<Response> response;
    bool keep_alive = false;  // the connection may carry another request
};

Error transportError(const Exchange& x, std::string_view what) {
    if (x.ec == beast::error::timeout) {
        return Error(SharedErrc::kTimeout, fmt::format("{}: timed out during {}", what, x.stage));
    }
    return Error(SharedErrc::kHttp,
                 fmt::format("{}: {} failed: {}", what, x.stage, x.ec.message()));
}

Result<Response> toResult(Exchange x, std::string_view what) {
    if (x.response) return std::move(*x.response);
    return fail(transportError(x, what));
}

/// A client stream of any protocol with its io_context: the code path request(), requestUnix()
/// and UnixConnection share.
template <class Protocol>
class Channel {
public:
    using Stream = beast::basic_stream<Protocol>;
    /// Starts connecting stream, keeping stage up to date ("resolve", "connect"); calls done
    /// exactly once.
    using Connect = std::function<void(Stream& stream, std::string& stage,
                                       std::function<void(beast::error_code)> done)>;

    explicit Channel(const ClientOptions& options) : options_(options) {}

    boost::asio::io_context& context() { return io_; }
    bool isOpen() { return stream_.socket().is_open(); }
    void close() {
        stream_.close();
        buffer_.clear();
    }

    /// An idle connection the server closed (or wrote to, which no request asked for) is
    /// useless; this peeks without blocking.
    bool idleConnectionBroken() {
        if (buffer_.size() != 0) return true;
        char byte = 0;
        const auto n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }

    /// Connects (when connect is set), then writes message and reads the response (when message
    /// is set), all under one deadline. Blocks until done.
    Exchange run(const Message* message, const Connect& connect) {
        Exchange x;
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(options_.max_response_bytes);
        beast::error_code write_ec;
        beast::error_code read_ec;
        bool read_done = false;
        bool abandoned = false;

        const auto read = [&] {
            bhttp::async_read(stream_, buffer_, parser, [&](beast::error_code ec, std::size_t) {
                read_ec = ec;
                read_done = true;
            });
        };
        const auto write = [&] {
            x.stage = "send";
            bhttp::async_write(stream_, *message, [&](beast::error_code ec, std::size_t) {
                x.sent = !ec;
                if (ec == beast::error::timeout) return void(x.ec = ec);
                write_ec = ec;
                if (!ec) x.stage = "receive";
                // Even when the write failed, a server that turned the request down early (413)
                // may have answered before closing: read what it sent.
                read();
            });
        };
        const auto connected = [&](beast::error_code ec) {
            if (abandoned) return;
            if (ec) return void(x.ec = ec);
            if (message != nullptr) write();
        };

        stream_.expires_after(options_.timeout);
        if (connect) {
            x.stage = "connect";
            connect(stream_, x.stage, connected);
        } else if (message != nullptr) {
            write();
        }
        io_.restart();
        io_.run_for(options_.timeout + kRunMargin);
        if (!io_.stopped()) {
            // The handlers refer to this frame: end everything and let them finish first.
            abandoned = true;
            close();
            io_.restart();
            io_.run();
            x.ec = beast::error::timeout;
            return x;
        }
        if (read_done && !read_ec) {
            const auto& res = parser.get();
            x.response = Response{static_cast<int>(res.result_int()),
                                  std::string(res[bhttp::field::content_type]), res.body()};
            x.keep_alive = !write_ec && res.keep_alive();
            x.ec = {};
        } else if (!x.ec) {
            x.ec = write_ec ? write_ec : read_ec;
        }
        return x;
    }

private:
    ClientOptions options_;
    boost::asio::io_context io_;
    Stream stream_{io_};
    beast::flat_buffer buffer_;
};

Result<unix_socket::endpoint> unixEndpoint(const std::filesystem::path& socket) {
    if (socket.empty() || socket.native().size() >= sizeof(sockaddr_un::sun_path)) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("unix:{}: a socket path must have 1 to {} bytes", socket.string(),
                                sizeof(sockaddr_un::sun_path) - 1));
    }
    return unix_socket::endpoint(socket.native());
}

class BeastUnixConnection final : public UnixConnection {
public:
    /// keep_alive false: one request, then the server closes (requestUnix).
    BeastUnixConnection(std::filesystem::path socket, unix_socket::endpoint endpoint,
                        const ClientOptions& options, bool keep_alive)
        : socket_(std::move(socket)),
          endpoint_(std::move(endpoint)),
          keep_alive_(keep_alive),
          channel_(options) {}

    Status connect() {
        auto x = channel_.run(nullptr, connectStep());
        if (!x.ec) return {};
        channel_.close();
        return fail(transportError(x, fmt::format("connect to unix:{}", socket_.string())));
    }

    Result<Response> send(const std::string& method, const std::string& target,
                          const std::string& body) override {
        const std::string what = fmt::format("{} {} on unix:{}", method, target, socket_.string());
        auto message = makeMessage(method, target, "localhost", body, keep_alive_);
        if (!message) return fail(std::move(message.error()).wrap(what));
        for (int attempt = 0;; ++attempt) {
            bool reused = channel_.isOpen();
            if (reused && channel_.idleConnectionBroken()) {
                channel_.close();
                reused = false;
            }
            auto x =
                channel_.run(&*message, reused ? Channel<unix_socket>::Connect{} : connectStep());
            if (x.response) {
                if (!x.keep_alive || !keep_alive_) channel_.close();
                return std::move(*x.response);
            }
            channel_.close();
            // The server closed the reused connection under us before the request was written
            // (the peek above raced its keep-alive timeout): nothing reached it, resend once.
            const bool retry = reused && attempt == 0 && !x.sent && x.ec != beast::error::timeout;
            if (!retry) return fail(transportError(x, what));
        }
    }

private:
    Channel<unix_socket>::Connect connectStep() {
        return [this](Channel<unix_socket>::Stream& stream, std::string& stage,
                      std::function<void(beast::error_code)> done) {
            stage = "connect";
            stream.async_connect(endpoint_, std::move(done));
        };
    }

    std::filesystem::path socket_;
    unix_socket::endpoint endpoint_;
    bool keep_alive_;
    Channel<unix_socket> channel_;
};

}  // namespace

Result<Response> request(const std::string& method, const std::string& url, const std::string& body,
                         const ClientOptions& options) {
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed || parsed->scheme() != "http" || !parsed->has_authority()) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("'{}' is not an http:// URL", url));
    }
    const std::string host(parsed->host());
    const std::string port = parsed->has_port() ? std::string(parsed->port()) : "80";
    std::string target(parsed->encoded_path());
    if (target.empty()) target = "/";
    if (parsed->has_query()) target += "?" + std::string(parsed->encoded_query());

    const std::string what = fmt::format("{} {}", method, url);
    auto message = makeMessage(method, target, host, body, /*keep_alive=*/false);
    if (!message) return fail(std::move(message.error()).wrap(what));

    Channel<tcp> channel(options);
    tcp::resolver resolver(channel.context());
    auto exchange = channel.run(&*message, [&](Channel<tcp>::Stream& stream, std::string& stage,
                                               std::function<void(beast::error_code)> done) {
        stage = "resolve";
        resolver.async_resolve(
            host, port,
            [&stream, &stage, done](beast::error_code ec, tcp::resolver::results_type endpoints) {
                if (ec) return done(ec);
                stage = "connect";
                stream.async_connect(
                    endpoints, [done](beast::error_code ec2, const tcp::endpoint&) { done(ec2); });
            });
    });
    return toResult(std::move(exchange), what);
}

Result<Response> requestUnix(const std::filesystem::path& socket, const std::string& method,
                             const std::string& target, const std::string& body,
                             const ClientOptions& options) {
    auto endpoint = unixEndpoint(socket);
    if (!endpoint)
        return fail(std::move(endpoint.error()).wrap(fmt::format("{} {}", method, target)));
    BeastUnixConnection connection(socket, *endpoint, options, /*keep_alive=*/false);
    return connection.send(method, target, body);
}

Result<std::unique_ptr<UnixConnection>> UnixConnection::open(const std::filesystem::path& socket,
                                                             ClientOptions options) {
    auto endpoint = unixEndpoint(socket);
    if (!endpoint) return fail(std::move(endpoint.error()));
    auto connection = std::make_unique<BeastUnixConnection>(socket, *endpoint, options,
                                                            /*keep_alive=*/true);
    if (auto connected = connection->connect(); !connected)
        return fail(std::move(connected.error()));
    return std::unique_ptr<UnixConnection>(std::move(connection));
}

}  // namespace edge::http
