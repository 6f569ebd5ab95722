#include "shared/http/beast/beast_server.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "shared/core/log.hpp"
#include "shared/http/beast/tls_context.hpp"
#include "shared/http/beast/tls_stream.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"

namespace edge::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using unix_socket = boost::asio::local::stream_protocol;
using TcpStream = beast::basic_stream<tcp>;
using TlsStream = tls::Stream<TcpStream>;

struct BeastHttpServer::State {
    State(boost::asio::io_context& io_context, Handler h, ServerOptions o)
        : io(io_context),
          tcp_acceptor(io_context),
          tls_acceptor(io_context),
          unix_acceptor(io_context),
          handler(std::move(h)),
          options(o) {}
    boost::asio::io_context& io;
    tcp::acceptor tcp_acceptor;
    tcp::acceptor tls_acceptor;
    unix_socket::acceptor unix_acceptor;
    std::shared_ptr<tls::Context> tls_context;  // set by listenTls
    std::chrono::milliseconds handshake_timeout{10000};
    /// The socket file listenUnix created, identified by device and inode so that stop() never
    /// removes a file someone else put there since.
    struct SocketFile {
        std::filesystem::path path;
        dev_t device;
        ino_t inode;
    };
    std::optional<SocketFile> socket_file;
    Handler handler;
    ServerOptions options;
    bool stopped = false;
    std::atomic<std::uint64_t> accepted{0};
};

namespace {

using State = BeastHttpServer::State;

bool isToken(std::string_view s) {
    constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
    return !s.empty() && std::ranges::all_of(s, [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               kSymbols.find(c) != std::string_view::npos;
    });
}

/// Whether a handler's extra header field may be sent: a valid field the server does not set
/// itself.
bool sendableHeader(const std::string& name, const std::string& value) {
    if (!isToken(name)) return false;
    if (std::ranges::any_of(value, [](char c) {
            return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
        })) {
        return false;
    }
    switch (bhttp::string_to_field(name)) {
        case bhttp::field::content_length:
        case bhttp::field::content_type:
        case bhttp::field::transfer_encoding:
        case bhttp::field::connection:
        case bhttp::field::server:
            return false;
        default:
            return true;
    }
}

Request toRequest(const bhttp::request<bhttp::string_body>& req, const std::string& peer_cn) {
    Request out;
    out.method = std::string(req.method_string());
    out.body = req.body();
    auto url = boost::urls::parse_origin_form(std::string_view(req.target()));
    if (url) {
        out.path = std::string(url->path());
        for (auto param : url->params()) out.query[param.key] = param.value;
    } else {
        out.path = std::string(req.target());
    }
    for (const auto& field : req) {
        out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    out.peer_cn = peer_cn;
    return out;
}

/// A body streamed from a FileBody with pread, one chunk at a time.
struct FileRangeBody {
    using value_type = std::shared_ptr<FileBody>;

    static std::uint64_t size(const value_type& body) { return body ? body->length() : 0; }

    class writer {
    public:
        using const_buffers_type = boost::asio::const_buffer;

        template <bool isRequest, class Fields>
        writer(const bhttp::header<isRequest, Fields>&, const value_type& body) : body_(body) {}

        void init(beast::error_code& ec) { ec = {}; }

        boost::optional<std::pair<const_buffers_type, bool>> get(beast::error_code& ec) {
            ec = {};
            const std::uint64_t length = size(body_);
            if (sent_ >= length) return boost::none;
            buffer_.resize(kChunk);
            const auto want =
                static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, length - sent_));
            ssize_t n = 0;
            do {
                n = ::pread(body_->fd(), buffer_.data(), want,
                            static_cast<off_t>(body_->offset() + sent_));
            } while (n < 0 && errno == EINTR);
            if (n < 0) {
                ec.assign(errno, boost::system::generic_category());
                return boost::none;
            }
            if (n == 0) {  // the file shrank under us: end the connection mid-body
                ec = boost::asio::error::eof;
                return boost::none;
            }
            sent_ += static_cast<std::uint64_t>(n);
            return std::make_pair(const_buffers_type(buffer_.data(), static_cast<std::size_t>(n)),
                                  sent_ < length);
        }

    private:
        // Large enough that a plain-TCP write fills the socket buffer in one call; over TLS,
        // tls::Stream seals it in 16 KiB records, up to 256 KiB of them per socket write.
        static constexpr std::size_t kChunk = 1u << 20;
        const value_type& body_;
        std::uint64_t sent_ = 0;
        std::vector<char> buffer_;
    };
};

template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

/// One connection, any stream (TCP, Unix, TLS over TCP): (TLS: handshakes within
/// handshake_timeout first, then) reads requests one at a time, each within request_timeout,
/// until the peer or a response ends the connection.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
public:
    template <class... Args>
    explicit Session(std::shared_ptr<State> state, Args&&... stream_args)
        : stream_(std::forward<Args>(stream_args)...),
          write_idle_(stream_.get_executor()),
          state_(std::move(state)) {}

    void start() {
        if constexpr (kIsTls<Stream>) {
            beast::error_code ignored;
            peer_address_ = beast::get_lowest_layer(stream_)
                                .socket()
                                .remote_endpoint(ignored)
                                .address()
                                .to_string();
            beast::get_lowest_layer(stream_).expires_after(state_->handshake_timeout);
            stream_.async_handshake(
                boost::asio::ssl::stream_base::server,
                [self = this->shared_from_this()](beast::error_code ec) { self->onHandshake(ec); });
        } else {
            readRequest();
        }
    }

private:
    void onHandshake(beast::error_code ec) {
        if constexpr (kIsTls<Stream>) {
            if (ec) {
                log::info("tls handshake from {} failed: {}", peer_address_, ec.message());
                return closeSocket();
            }
            peer_cn_ = tls::peerCommonName(stream_.native_handle());
            readRequest();
        }
    }

    void readRequest() {
        parser_.emplace();
        parser_->body_limit(state_->options.max_body_bytes);
        parser_->header_limit(16 * 1024);
        beast::get_lowest_layer(stream_).expires_after(state_->options.request_timeout);
        bhttp::async_read(stream_, buffer_, *parser_,
                          [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->onRead(ec);
                          });
    }

    void onRead(beast::error_code ec) {
        if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
            ec == boost::asio::error::operation_aborted ||
            ec == boost::asio::error::connection_reset) {
            return close();
        }
        if (kIsTls<Stream> && (ec == boost::asio::ssl::error::stream_truncated ||
                               ec.category() == boost::asio::error::get_ssl_category())) {
            return closeSocket();  // the TLS layer is broken: no response can get through
        }
        if (ec == bhttp::error::body_limit) {
            return send(errorResponse(413, "request body is larger than the limit"), false, false);
        }
        if (ec) {
            return send(errorResponse(400, fmt::format("bad request: {}", ec.message())), false,
                        false);
        }
        if (state_->stopped) return close();
        const auto& req = parser_->get();
        Response response;
        try {
            response = state_->handler(toRequest(req, peer_cn_));
        } catch (const std::exception& e) {
            log::error("http handler failed: {}", e.what());
            response = errorResponse(500, "internal error");
        } catch (...) {
            log::error("http handler failed with a non-standard exception");
            response = errorResponse(500, "internal error");
        }
        send(std::move(response), req.keep_alive(), req.method() == bhttp::verb::head);
    }

    /// head: a response to HEAD, with the fields (Content-Length included) but not the body.
    void send(Response response, bool keep_alive, bool head) {
        const auto fill = [&](auto& res) {
            res.result(static_cast<unsigned>(response.status));
            res.version(11);
            res.set(bhttp::field::server, "edge");
            res.set(bhttp::field::content_type, response.content_type);
            for (const auto& [name, value] : response.headers) {
                if (sendableHeader(name, value)) {
                    res.insert(name, value);
                } else {
                    log::warn("http: dropped response header '{}'", name);
                }
            }
            res.keep_alive(keep_alive);
        };
        if (head) {
            auto res = std::make_shared<bhttp::response<bhttp::empty_body>>();
            fill(*res);
            res->content_length(response.file ? response.file->length() : response.body.size());
            return write(std::move(res), keep_alive);
        }
        if (response.file) {
            auto res = std::make_shared<bhttp::response<FileRangeBody>>();
            fill(*res);
            res->body() = std::move(response.file);
            res->prepare_payload();
            return write(std::move(res), keep_alive);
        }
        auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
        fill(*res);
        res->body() = std::move(response.body);
        res->prepare_payload();
        write(std::move(res), keep_alive);
    }

    template <class Body>
    void write(std::shared_ptr<bhttp::response<Body>> res, bool keep_alive) {
        // A large body may take longer than one request_timeout: the deadline restarts with
        // each chunk sent, so only a stalled peer is cut off.
        beast::get_lowest_layer(stream_).expires_after(state_->options.request_timeout);
        auto& message = *res;
        if constexpr (std::is_same_v<Body, FileRangeBody>) {
            // The stream's deadline would cost two timer operations per socket write: a
            // watchdog that wakes once per request_timeout takes its place.
            beast::get_lowest_layer(stream_).expires_never();
            body_writing_ = true;
            last_write_ = Clock::now();
            watchWrites();
            auto serializer = std::make_shared<bhttp::response_serializer<Body>>(message);
            writeSome(std::move(res), std::move(serializer), keep_alive);
        } else {
            bhttp::async_write(stream_, message,
                               [self = this->shared_from_this(), res = std::move(res), keep_alive](
                                   beast::error_code ec, std::size_t) {
                                   if (ec || !keep_alive) return self->close();
                                   self->readRequest();
                               });
        }
    }

    /// Cuts the connection once a streamed body made no progress for request_timeout.
    void watchWrites() {
        write_idle_.expires_at(last_write_ + state_->options.request_timeout);
        write_idle_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
            if (ec || !self->body_writing_) return;
            if (Clock::now() - self->last_write_ < self->state_->options.request_timeout) {
                return self->watchWrites();
            }
            log::info("http: a response body made no progress for {} ms; closing",
                      self->state_->options.request_timeout.count());
            self->closeSocket();  // the pending write fails and ends the session
        });
    }

    void endBody() {
        body_writing_ = false;
        write_idle_.cancel();
    }

    template <class Body>
    void writeSome(std::shared_ptr<bhttp::response<Body>> res,
                   std::shared_ptr<bhttp::response_serializer<Body>> serializer, bool keep_alive) {
        auto& sr = *serializer;
        bhttp::async_write_some(
            stream_, sr,
            [self = this->shared_from_this(), res = std::move(res),
             serializer = std::move(serializer),
             keep_alive](beast::error_code ec, std::size_t) mutable {
                self->last_write_ = Clock::now();
                if (ec) {
                    self->endBody();
                    return self->closeSocket();  // mid-body: the client must see it cut
                }
                if (!serializer->is_done()) {
                    return self->writeSome(std::move(res), std::move(serializer), keep_alive);
                }
                self->endBody();
                if (!keep_alive) return self->close();
                self->readRequest();
            });
    }

    /// Ends the connection after what was sent: TLS close_notify (bounded), then FIN.
    void close() {
        if constexpr (kIsTls<Stream>) {
            beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
            stream_.async_shutdown(
                [self = this->shared_from_this()](beast::error_code) { self->closeSocket(); });
        } else {
            beast::error_code ignored;
            stream_.socket().shutdown(boost::asio::socket_base::shutdown_send, ignored);
        }
    }

    void closeSocket() {
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).socket().shutdown(boost::asio::socket_base::shutdown_both,
                                                           ignored);
        beast::get_lowest_layer(stream_).close();
    }

    using Clock = boost::asio::steady_timer::clock_type;

    Stream stream_;
    boost::asio::steady_timer write_idle_;  // watchWrites()
    Clock::time_point last_write_;          // the last write of a streamed body completed
    bool body_writing_ = false;
    beast::flat_buffer buffer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    std::shared_ptr<State> state_;
    std::string peer_cn_;
    std::string peer_address_;  // TLS only, for logs
};

/// The accept loop of one listener; the acceptor lives in state, which the handler keeps alive.
/// Plain listeners serve HTTP on the socket, the TLS listener HTTPS.
template <class Acceptor>
void accept(const std::shared_ptr<State>& state, Acceptor& acceptor, bool tls = false) {
    using Protocol = typename Acceptor::protocol_type;
    acceptor.async_accept([state, &acceptor, tls](beast::error_code ec,
                                                  typename Protocol::socket socket) {
        if (state->stopped) return;
        if (ec) {
            // Out of descriptors and the like: back off instead of spinning on the error.
            log::warn("http accept failed: {}", ec.message());
            auto timer = std::make_shared<boost::asio::steady_timer>(
                state->io, std::chrono::milliseconds(100));
            timer->async_wait([state, &acceptor, timer, tls](beast::error_code) {
                if (!state->stopped) accept(state, acceptor, tls);
            });
            return;
        }
        state->accepted.fetch_add(1, std::memory_order_relaxed);
        if constexpr (std::is_same_v<Protocol, tcp>) {
            if (tls) {
                std::make_shared<Session<TlsStream>>(state, TcpStream(std::move(socket)),
                                                     *state->tls_context)
                    ->start();
                return accept(state, acceptor, tls);
            }
        }
        std::make_shared<Session<beast::basic_stream<Protocol>>>(state, std::move(socket))->start();
        accept(state, acceptor, tls);
    });
}

/// Makes path free for a new socket: nothing there, or a socket nobody accepts on (left by a
/// process that died), which is removed. Anything else is refused and left alone.
Status clearStaleSocket(const std::filesystem::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return {};
        return fail(SharedErrc::kIo, fmt::format("stat: {}", std::strerror(errno)));
    }
    if (!S_ISSOCK(st.st_mode)) {
        return fail(SharedErrc::kInvalidArgument,
                    "a file that is not a socket is in the way; refusing to replace it");
    }
    // A non-blocking connect tells a live server (accepts, or its backlog is full) from a stale
    // file (refused).
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) return fail(SharedErrc::kIo, fmt::format("socket: {}", std::strerror(errno)));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.native().size() + 1);
    const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    const int connect_errno = errno;
    ::close(probe);
    if (rc == 0 || connect_errno == EAGAIN || connect_errno == EINPROGRESS) {
        return fail(SharedErrc::kUnavailable, "another server is listening on this socket");
    }
    if (connect_errno != ECONNREFUSED && connect_errno != ENOENT) {
        return fail(SharedErrc::kIo,
                    fmt::format("probe existing socket: {}", std::strerror(connect_errno)));
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return fail(SharedErrc::kIo, fmt::format("remove stale socket: {}", std::strerror(errno)));
    }
    log::info("removed stale socket {}", path.string());
    return {};
}

}  // namespace

BeastHttpServer::BeastHttpServer(AsioEventLoop& loop, Handler handler, ServerOptions options)
    : state_(std::make_shared<State>(loop.context(), std::move(handler), options)) {}

BeastHttpServer::~BeastHttpServer() { stop(); }

namespace {

/// Opens, binds and listens acceptor on host:port.
Result<int> bindTcp(tcp::acceptor& acceptor, const std::string& host, int port) {
    if (acceptor.is_open()) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("listen on {}:{}: this listener is already open", host, port));
    }
    beast::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    if (ec) return fail(SharedErrc::kInvalidArgument, fmt::format("bad listen address '{}'", host));
    if (port < 0 || port > 65535) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("bad listen port {}", port));
    }
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
    if (ec) {
        beast::error_code ignored;
        acceptor.close(ignored);
        return fail(SharedErrc::kHttp,
                    fmt::format("listen on {}:{}: {}", host, port, ec.message()));
    }
    return static_cast<int>(acceptor.local_endpoint().port());
}

}  // namespace

Result<int> BeastHttpServer::listen(const std::string& host, int port) {
    if (state_->stopped) return fail(SharedErrc::kInvalidArgument, "listen: the server is stopped");
    auto bound = bindTcp(state_->tcp_acceptor, host, port);
    if (bound) accept(state_, state_->tcp_acceptor);
    return bound;
}

Result<int> BeastHttpServer::listenTls(const std::string& host, int port,
                                       const TlsServerOptions& tls) {
    const std::string where = fmt::format("listen with TLS on {}:{}", host, port);
    if (state_->stopped) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("{}: the server is stopped", where));
    }
    if (state_->tls_acceptor.is_open()) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("{}: already listening", where));
    }
    auto context = tls::serverContext(tls);
    if (!context) return fail(std::move(context.error()).wrap(where));
    state_->tls_context = std::move(*context);
    state_->handshake_timeout = tls.handshake_timeout;
    auto bound = bindTcp(state_->tls_acceptor, host, port);
    if (bound) accept(state_, state_->tls_acceptor, /*tls=*/true);
    return bound;
}

Status BeastHttpServer::listenUnix(const std::filesystem::path& path, unsigned mode) {
    const std::string where = fmt::format("listen on unix:{}", path.string());
    auto& acceptor = state_->unix_acceptor;
    if (state_->stopped) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("{}: the server is stopped", where));
    }
    if (acceptor.is_open()) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("{}: already listening on unix:{}", where,
                                state_->socket_file ? state_->socket_file->path.string() : ""));
    }
    if (path.empty() || path.native().size() >= sizeof(sockaddr_un::sun_path)) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("{}: a socket path must have 1 to {} bytes", where,
                                sizeof(sockaddr_un::sun_path) - 1));
    }
    if (mode > 07777) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("{}: bad mode {:o}", where, mode));
    }
    if (auto cleared = clearStaleSocket(path); !cleared) {
        return fail(std::move(cleared.error()).wrap(where));
    }

    beast::error_code ec;
    std::string step = "open";
    const unix_socket::endpoint endpoint(path.native());
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
        step = "bind";
        acceptor.bind(endpoint, ec);
    }
    bool created = !ec;
    struct stat st {};
    if (!ec) {
        // Before listen(): nobody can connect until the permissions are right.
        step = "chmod";
        if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0 ||
            ::lstat(path.c_str(), &st) != 0) {
            ec.assign(errno, boost::system::generic_category());
        }
    }
    if (!ec) {
        step = "listen";
        acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        beast::error_code ignored;
        acceptor.close(ignored);
        if (created) ::unlink(path.c_str());
        return fail(SharedErrc::kHttp, fmt::format("{}: {}: {}", where, step, ec.message()));
    }
    state_->socket_file = State::SocketFile{path, st.st_dev, st.st_ino};
    accept(state_, acceptor);
    return {};
}

void BeastHttpServer::stop() {
    if (state_->stopped) return;
    state_->stopped = true;
    beast::error_code ignored;
    state_->tcp_acceptor.close(ignored);
    state_->tls_acceptor.close(ignored);
    state_->unix_acceptor.close(ignored);
    if (const auto& file = state_->socket_file) {
        struct stat st {};
        if (::lstat(file->path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_dev == file->device && st.st_ino == file->inode) {
            ::unlink(file->path.c_str());
        }
        state_->socket_file.reset();
    }
}

std::uint64_t BeastHttpServer::connectionsAccepted() const {
    return state_->accepted.load(std::memory_order_relaxed);
}

}  // namespace edge::http
