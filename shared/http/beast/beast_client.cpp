// http::request, requestTls, downloadTo, requestUnix and UnixConnection on Boost.Beast. Each owns
// a private io_context that runs only while one exchange (connect, write, read) is in flight,
// under one deadline (downloadTo: a deadline per wait, see http.hpp).
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>

#include "shared/http/beast/tls_context.hpp"
#include "shared/http/beast/tls_stream.hpp"
#include "shared/http/http.hpp"

namespace edge::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using unix_socket = boost::asio::local::stream_protocol;
using Message = bhttp::request<bhttp::string_body>;
using TcpStream = beast::basic_stream<tcp>;
using UnixStream = beast::basic_stream<unix_socket>;
using TlsStream = tls::Stream<TcpStream>;

namespace {

// io_context::run_for() gets this much beyond the stream's own deadline, which normally fires
// first; the margin only catches what the deadline does not cover (name resolution).
constexpr std::chrono::milliseconds kRunMargin{500};
/// The most of a non-2xx body downloadTo() keeps (error messages, not content).
constexpr std::uint64_t kErrorBodyLimit = 64u << 10;
/// downloadTo() reads a body of known length in reads of up to this many bytes.
constexpr std::size_t kBodyRead = 1u << 20;
/// The parser reads other bodies (chunked, close-delimited, error texts) in up to 64 KiB.
constexpr std::size_t kParserRead = 64u << 10;

template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

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
                            const std::string& host, const std::string& body, bool keep_alive,
                            const Headers& extra = {}) {
    if (!isToken(method)) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("bad method '{}'", method));
    }
    for (const auto& [name, value] : extra) {
        const bool bad_value = std::ranges::any_of(value, [](char c) {
            return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
        });
        if (!isToken(name) || bad_value) {
            return fail(SharedErrc::kInvalidArgument, fmt::format("bad header field '{}'", name));
        }
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
        for (const auto& [name, value] : extra) req.set(name, value);
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
    std::string detail;  // appended to ec's message (why a certificate was refused)
    bool sent = false;   // the request was written completely
    std::optional<Response> response;
    bool keep_alive = false;  // the connection may carry another request
};

Error transportError(const Exchange& x, std::string_view what) {
    if (x.ec == beast::error::timeout) {
        return Error(SharedErrc::kTimeout, fmt::format("{}: timed out during {}", what, x.stage));
    }
    return Error(SharedErrc::kHttp,
                 fmt::format("{}: {} failed: {}{}", what, x.stage, x.ec.message(), x.detail));
}

Result<Response> toResult(Exchange x, std::string_view what) {
    if (x.response) return std::move(*x.response);
    return fail(transportError(x, what));
}

template <class Fields>
Headers toHeaders(const Fields& fields) {
    Headers out;
    for (const auto& field : fields) {
        out.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    return out;
}

/// Where a downloaded body goes: the sink (2xx) or error_body (anything else), never more than
/// limit bytes.
struct SinkTarget {
    const BodySink* sink = nullptr;  // null: append to text
    std::string* text = nullptr;
    std::uint64_t limit = 0;
    std::uint64_t received = 0;
    std::optional<Error> sink_error;
};

/// A body type whose reader hands each piece of the body to a SinkTarget as it is parsed.
/// Passing the limit is a body_limit error after exactly limit bytes were delivered.
struct SinkBody {
    using value_type = SinkTarget;

    class reader {
    public:
        template <bool isRequest, class Fields>
        reader(bhttp::header<isRequest, Fields>&, value_type& target) : target_(target) {}

        void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec) {
            ec = {};
            if (length && *length > target_.limit - target_.received) ec = bhttp::error::body_limit;
        }

        template <class Buffers>
        std::size_t put(const Buffers& buffers, beast::error_code& ec) {
            ec = {};
            std::size_t used = 0;
            for (const auto buffer : beast::buffers_range_ref(buffers)) {
                std::string_view chunk(static_cast<const char*>(buffer.data()), buffer.size());
                const std::uint64_t room = target_.limit - target_.received;
                const bool over = chunk.size() > room;
                if (over) chunk = chunk.substr(0, static_cast<std::size_t>(room));
                if (!chunk.empty()) {
                    if (target_.sink != nullptr) {
                        if (auto ok = (*target_.sink)(chunk); !ok) {
                            target_.sink_error = std::move(ok.error());
                            ec = boost::asio::error::operation_aborted;
                            return used;
                        }
                    } else {
                        target_.text->append(chunk);
                    }
                }
                target_.received += chunk.size();
                used += chunk.size();
                if (over) {
                    ec = bhttp::error::body_limit;
                    return used;
                }
            }
            return used;
        }

        void finish(beast::error_code& ec) { ec = {}; }

    private:
        value_type& target_;
    };
};

/// What one streamed download produced.
struct StreamExchange {
    std::string stage = "send";
    beast::error_code ec;
    std::string detail;  // appended to ec's message (why a certificate was refused)
    StreamResult result;
    bool head_done = false;
    std::optional<Error> error;  // from on_head or the sink, or a limit
};

/// A client stream (TCP, Unix, TLS over TCP) with its io_context: the code path request(),
/// requestTls(), downloadTo(), requestUnix() and UnixConnection share.
template <class Stream>
class Channel {
public:
    /// Starts connecting stream, keeping stage up to date ("resolve", "connect",
    /// "tls handshake"); calls done exactly once.
    using Connect = std::function<void(Stream& stream, std::string& stage,
                                       std::function<void(beast::error_code)> done)>;

    /// stream_args follow the io_context in the stream's constructor (a TLS context).
    template <class... Args>
    explicit Channel(const ClientOptions& options, Args&... stream_args)
        : options_(options), stream_(io_, stream_args...) {}

    boost::asio::io_context& context() { return io_; }
    Stream& stream() { return stream_; }
    bool isOpen() { return beast::get_lowest_layer(stream_).socket().is_open(); }
    void close() {
        beast::get_lowest_layer(stream_).close();
        buffer_.clear();
    }

    /// An idle connection the server closed (or wrote to, which no request asked for) is
    /// useless; this peeks without blocking.
    bool idleConnectionBroken() {
        if (buffer_.size() != 0) return true;
        char byte = 0;
        const auto n = ::recv(beast::get_lowest_layer(stream_).socket().native_handle(), &byte, 1,
                              MSG_PEEK | MSG_DONTWAIT);
        return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }

    /// Connects (when connect is set), then writes message and reads the response (when message
    /// is set), all under one deadline. Blocks until done.
    Exchange run(const Message* message, const Connect& connect) {
        Exchange x;
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(options_.max_response_bytes);
        // A response to HEAD declares a Content-Length but has no body.
        if (message != nullptr && message->method() == bhttp::verb::head) parser.skip(true);
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

        beast::get_lowest_layer(stream_).expires_after(options_.timeout);
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
            x.response =
                Response{static_cast<int>(res.result_int()),
                         std::string(res[bhttp::field::content_type]), res.body(), toHeaders(res)};
            x.keep_alive = !write_ec && res.keep_alive();
            x.ec = {};
        } else if (!x.ec) {
            x.ec = write_ec ? write_ec : read_ec;
        }
        return x;
    }

    /// Connects, writes message, reads the header and streams the body into the sink (2xx) or
    /// error_body. Connecting, sending and the header share one deadline (options.timeout);
    /// then each wait for body bytes gets options.timeout, kept by an idle watchdog (one timer
    /// re-armed once per timeout, not per read: a read costs no timer operation). A 2xx body
    /// with a Content-Length is read straight into a large buffer (kBodyRead bytes per read
    /// instead of the parser's 64 KiB; into the memory body_buffer lends, if any) and handed
    /// to the sink from there; chunked or close-delimited bodies go through the parser. Blocks
    /// until done.
    StreamExchange runStreaming(const Message& message, const Connect& connect,
                                const HeadCheck& on_head, const BodySink& sink,
                                std::uint64_t max_body, const BodyBuffer& body_buffer) {
        using Clock = boost::asio::steady_timer::clock_type;
        StreamExchange x;
        bhttp::response_parser<SinkBody> parser;
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // SinkTarget enforces
        std::uint64_t events = 0;  // completions so far: the run loop's sign of progress
        bool abandoned = false;
        bool done = false;
        bool idle_expired = false;
        Clock::time_point last_activity;
        boost::asio::steady_timer idle(io_);
        std::function<void()> read_body;
        std::function<void()> read_raw;
        std::function<void()> watch;
        std::unique_ptr<char[]> raw;     // the direct path's own buffer, when not lent one
        char* reading = nullptr;          // where the pending read of the direct path goes
        std::uint64_t raw_remaining = 0;  // body bytes the direct path still expects

        const auto finish = [&](beast::error_code ec) {
            done = true;
            idle.cancel();
            // A read cut short by the watchdog is a timeout; one that brought the last bytes
            // just as it fired is not.
            x.ec = idle_expired && ec ? beast::error_code(beast::error::timeout) : ec;
            x.result.body_bytes = x.head_done && parser.get().body().sink != nullptr
                                      ? parser.get().body().received
                                      : 0;
        };
        // Closes the connection once nothing arrived for a whole options.timeout: the pending
        // read then completes with an error, reported as a timeout.
        watch = [&] {
            idle.expires_at(last_activity + options_.timeout);
            idle.async_wait([&](beast::error_code ec) {
                if (ec || done || abandoned) return;
                if (Clock::now() - last_activity < options_.timeout) return watch();
                idle_expired = true;
                beast::get_lowest_layer(stream_).socket().close(ec);
            });
        };
        const auto startBody = [&] {
            // The stream's own deadline covered the exchange so far; the watchdog takes over.
            beast::get_lowest_layer(stream_).expires_never();
            last_activity = Clock::now();
            watch();
        };
        const auto onBody = [&](beast::error_code ec, std::size_t) {
            ++events;
            if (abandoned) return;
            auto& target = parser.get().body();
            if (target.sink_error) {
                x.error = std::move(*target.sink_error);
                return finish({});
            }
            if (ec == bhttp::error::body_limit) {
                if (target.sink == nullptr) return finish({});  // error body: keep the start
                x.error = Error(SharedErrc::kHttp,
                                fmt::format("the response body has more than {} bytes", max_body));
                return finish({});
            }
            if (ec) return finish(ec);
            if (parser.is_done()) return finish({});
            read_body();
        };
        read_body = [&] {
            x.stage = "receive body";
            // The idle clock starts when the read does: time the sink took is not the server's.
            last_activity = Clock::now();
            bhttp::async_read_some(stream_, buffer_, parser, onBody);
        };
        /// Hands body bytes to the sink (the direct path); false once the sink refused them.
        const auto deliver = [&](std::string_view bytes) {
            auto& target = parser.get().body();
            if (bytes.empty()) return true;
            if (auto ok = sink(bytes); !ok) {
                x.error = std::move(ok.error());
                return false;
            }
            target.received += bytes.size();
            raw_remaining -= bytes.size();
            return true;
        };
        const auto onRaw = [&](beast::error_code ec, std::size_t n) {
            ++events;
            if (abandoned) return;
            if (!deliver(std::string_view(reading, n))) return finish({});
            if (raw_remaining == 0) return finish({});
            if (ec == boost::asio::error::eof) ec = bhttp::error::partial_message;
            if (ec) return finish(ec);
            read_raw();
        };
        read_raw = [&] {
            x.stage = "receive body";
            auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kBodyRead, raw_remaining));
            const auto lent = body_buffer ? body_buffer(want) : std::span<char>();
            if (!lent.empty()) {
                reading = lent.data();
                want = std::min(want, lent.size());
            } else {  // nothing lent: a buffer of our own, as large as the first read (the largest)
                if (!raw) raw = std::make_unique_for_overwrite<char[]>(want);
                reading = raw.get();
            }
            last_activity = Clock::now();  // after the sink and the loan, which may wait for the disk
            stream_.async_read_some(boost::asio::buffer(reading, want), onRaw);
        };
        const auto onHeader = [&](beast::error_code ec, std::size_t) {
            ++events;
            if (abandoned) return;
            if (ec) return finish(ec);
            const auto& res = parser.get();
            x.head_done = true;
            x.result.status = static_cast<int>(res.result_int());
            x.result.headers = toHeaders(res);
            auto& target = parser.get().body();
            const bool success = x.result.status >= 200 && x.result.status < 300;
            if (success) {
                if (on_head) {
                    if (auto ok = on_head(x.result); !ok) {
                        x.error = std::move(ok.error());
                        return finish({});
                    }
                }
                if (const auto length = parser.content_length(); length && *length > max_body) {
                    x.error = Error(SharedErrc::kHttp,
                                    fmt::format("the response declares {} body bytes, more than "
                                                "the {} bytes expected",
                                                *length, max_body));
                    return finish({});
                }
                target.sink = &sink;
                target.limit = max_body;
            } else {
                target.text = &x.result.error_body;
                target.limit = kErrorBodyLimit;
            }
            if (parser.is_done()) return finish({});
            startBody();
            const auto length = parser.content_length();
            if (success && length && !parser.chunked()) {
                // The direct path: what came with the header first, then large reads. Bytes
                // past the declared length are never read (the connection is not reused).
                raw_remaining = *length;
                const auto early = std::min<std::uint64_t>(buffer_.size(), raw_remaining);
                const bool taken =
                    deliver(std::string_view(static_cast<const char*>(buffer_.data().data()),
                                             static_cast<std::size_t>(early)));
                buffer_.consume(static_cast<std::size_t>(early));
                if (!taken || raw_remaining == 0) return finish({});
                return read_raw();
            }
            // Beast reads at most the buffer's free capacity (at least 512 bytes, at most 64
            // KiB): without room made here, the header-sized buffer means 512-byte reads.
            buffer_.reserve(kParserRead);
            read_body();
        };
        const auto read_header = [&] {
            x.stage = "receive header";
            beast::get_lowest_layer(stream_).expires_after(options_.timeout);
            bhttp::async_read_header(stream_, buffer_, parser, onHeader);
        };
        const auto write = [&] {
            x.stage = "send";
            bhttp::async_write(stream_, message, [&](beast::error_code ec, std::size_t) {
                ++events;
                if (abandoned) return;
                if (ec == beast::error::timeout) return finish(ec);
                // A server that turned the request down may have answered before closing.
                read_header();
            });
        };

        beast::get_lowest_layer(stream_).expires_after(options_.timeout);
        x.stage = "connect";
        connect(stream_, x.stage, [&](beast::error_code ec) {
            ++events;
            if (abandoned) return;
            if (ec) return finish(ec);
            write();
        });
        for (std::uint64_t seen = events;; seen = events) {
            io_.restart();
            io_.run_for(options_.timeout + kRunMargin);
            if (io_.stopped()) break;
            if (events == seen) {
                // Nothing completed for a whole timeout (a resolver that hangs): give up.
                abandoned = true;
                idle.cancel();
                close();
                io_.restart();
                io_.run();
                x.ec = beast::error::timeout;
                break;
            }
        }
        return x;
    }

private:
    ClientOptions options_;
    boost::asio::io_context io_;
    Stream stream_;
    beast::flat_buffer buffer_;
};

/// The parts of an http:// or https:// URL a request needs.
struct Url {
    bool https = false;
    std::string host;  // for DNS and certificate checks: no brackets around IPv6
    std::string port;
    std::string host_header;  // Host: as in the URL
    std::string target;       // origin-form path and query
};

Result<Url> parseUrl(const std::string& url, bool allow_http, bool allow_https) {
    auto parsed = boost::urls::parse_uri(url);
    const bool http = parsed && parsed->scheme() == "http" && allow_http;
    const bool https = parsed && parsed->scheme() == "https" && allow_https;
    if ((!http && !https) || !parsed->has_authority() || parsed->host().empty()) {
        const std::string_view schemes = allow_http && allow_https ? "http:// or https://"
                                         : allow_https             ? "https://"
                                                                   : "http://";
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("'{}' is not an {} URL", url, schemes));
    }
    Url out;
    out.https = https;
    out.host = parsed->host_type() == boost::urls::host_type::ipv6
                   ? std::string(parsed->host_address())
                   : std::string(parsed->host());
    out.port = parsed->has_port() ? std::string(parsed->port()) : (https ? "443" : "80");
    out.host_header = std::string(parsed->host());
    if (parsed->has_port()) out.host_header += ":" + out.port;
    out.target = std::string(parsed->encoded_path());
    if (out.target.empty()) out.target = "/";
    if (parsed->has_query()) out.target += "?" + std::string(parsed->encoded_query());
    return out;
}

/// Resolve, connect and (TLS) handshake; resolver must outlive the exchange.
template <class Stream>
typename Channel<Stream>::Connect tcpConnect(tcp::resolver& resolver, const Url& url) {
    return [&resolver, host = url.host, port = url.port](
               Stream& stream, std::string& stage, std::function<void(beast::error_code)> done) {
        stage = "resolve";
        resolver.async_resolve(
            host, port,
            [&stream, &stage, done](beast::error_code ec, tcp::resolver::results_type endpoints) {
                if (ec) return done(ec);
                stage = "connect";
                beast::get_lowest_layer(stream).async_connect(
                    endpoints,
                    [&stream, &stage, done](beast::error_code ec2, const tcp::endpoint&) {
                        if constexpr (kIsTls<Stream>) {
                            if (ec2) return done(ec2);
                            stage = "tls handshake";
                            stream.async_handshake(boost::asio::ssl::stream_base::client, done);
                        } else {
                            (void)stream;
                            done(ec2);
                        }
                    });
            });
    };
}

/// A TLS channel set up to verify url's host; the context must outlive it.
Result<std::unique_ptr<Channel<TlsStream>>> tlsChannel(tls::Context& context, const Url& url,
                                                       const ClientOptions& options) {
    auto channel = std::make_unique<Channel<TlsStream>>(options, context);
    if (auto ok = tls::expectHost(channel->stream().native_handle(), url.host); !ok) {
        return fail(std::move(ok.error()));
    }
    return channel;
}

/// After a failed handshake: why the server's certificate was refused, if it was.
template <class X>
void explainHandshake(X& x, Channel<TlsStream>& channel) {
    if (x.ec && x.stage == "tls handshake") {
        if (auto why = tls::verifyFailure(channel.stream().native_handle()); !why.empty()) {
            x.detail = ": server certificate: " + why;
        }
    }
}

Error streamError(StreamExchange& x, std::string_view what) {
    if (x.error) return std::move(*x.error).wrap(what);
    if (x.ec == beast::error::timeout) {
        return Error(SharedErrc::kTimeout, fmt::format("{}: timed out during {}", what, x.stage));
    }
    if (x.ec == bhttp::error::partial_message || x.ec == bhttp::error::end_of_stream ||
        x.ec == boost::asio::ssl::error::stream_truncated) {
        return Error(SharedErrc::kHttp,
                     fmt::format("{}: the connection ended during {}", what, x.stage));
    }
    return Error(SharedErrc::kHttp,
                 fmt::format("{}: {} failed: {}{}", what, x.stage, x.ec.message(), x.detail));
}

Result<StreamResult> toStreamResult(StreamExchange x, std::string_view what) {
    if (x.error || x.ec) return fail(streamError(x, what));
    return std::move(x.result);
}

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
                channel_.run(&*message, reused ? Channel<UnixStream>::Connect{} : connectStep());
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
    Channel<UnixStream>::Connect connectStep() {
        return [this](UnixStream& stream, std::string& stage,
                      std::function<void(beast::error_code)> done) {
            stage = "connect";
            stream.async_connect(endpoint_, std::move(done));
        };
    }

    std::filesystem::path socket_;
    unix_socket::endpoint endpoint_;
    bool keep_alive_;
    Channel<UnixStream> channel_;
};

}  // namespace

Result<Response> request(const std::string& method, const std::string& url, const std::string& body,
                         const ClientOptions& options) {
    auto parsed = parseUrl(url, /*allow_http=*/true, /*allow_https=*/false);
    if (!parsed) return fail(std::move(parsed.error()));
    const std::string what = fmt::format("{} {}", method, url);
    auto message =
        makeMessage(method, parsed->target, parsed->host_header, body, /*keep_alive=*/false);
    if (!message) return fail(std::move(message.error()).wrap(what));

    Channel<TcpStream> channel(options);
    tcp::resolver resolver(channel.context());
    return toResult(channel.run(&*message, tcpConnect<TcpStream>(resolver, *parsed)), what);
}

Result<Response> requestTls(const std::string& method, const std::string& url,
                            const Headers& headers, const std::string& body,
                            const TlsClientOptions& tls, const ClientOptions& options) {
    auto parsed = parseUrl(url, /*allow_http=*/false, /*allow_https=*/true);
    if (!parsed) return fail(std::move(parsed.error()));
    const std::string what = fmt::format("{} {}", method, url);
    auto message = makeMessage(method, parsed->target, parsed->host_header, body,
                               /*keep_alive=*/false, headers);
    if (!message) return fail(std::move(message.error()).wrap(what));
    auto context = tls::clientContext(tls);
    if (!context) return fail(std::move(context.error()).wrap(what));
    auto channel = tlsChannel(**context, *parsed, options);
    if (!channel) return fail(std::move(channel.error()).wrap(what));
    tcp::resolver resolver((*channel)->context());
    auto exchange = (*channel)->run(&*message, tcpConnect<TlsStream>(resolver, *parsed));
    explainHandshake(exchange, **channel);
    return toResult(std::move(exchange), what);
}

Result<StreamResult> downloadTo(const std::string& url, const Headers& headers,
                                const TlsClientOptions* tls, const ClientOptions& options,
                                const BodySink& sink, std::uint64_t max_body,
                                const HeadCheck& on_head, const BodyBuffer& body_buffer) {
    auto parsed = parseUrl(url, /*allow_http=*/true, /*allow_https=*/true);
    if (!parsed) return fail(std::move(parsed.error()));
    const std::string what = fmt::format("GET {}", url);
    if (!sink) return fail(SharedErrc::kInvalidArgument, what + ": no sink");
    auto message =
        makeMessage("GET", parsed->target, parsed->host_header, {}, /*keep_alive=*/false, headers);
    if (!message) return fail(std::move(message.error()).wrap(what));
    if (!parsed->https) {
        Channel<TcpStream> channel(options);
        tcp::resolver resolver(channel.context());
        return toStreamResult(
            channel.runStreaming(*message, tcpConnect<TcpStream>(resolver, *parsed), on_head, sink,
                                 max_body, body_buffer),
            what);
    }
    if (tls == nullptr) {
        return fail(SharedErrc::kInvalidArgument, what + ": an https:// URL needs TLS options");
    }
    auto context = tls::clientContext(*tls);
    if (!context) return fail(std::move(context.error()).wrap(what));
    auto channel = tlsChannel(**context, *parsed, options);
    if (!channel) return fail(std::move(channel.error()).wrap(what));
    tcp::resolver resolver((*channel)->context());
    auto exchange = (*channel)->runStreaming(*message, tcpConnect<TlsStream>(resolver, *parsed),
                                             on_head, sink, max_body, body_buffer);
    explainHandshake(exchange, **channel);
    return toStreamResult(std::move(exchange), what);
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
