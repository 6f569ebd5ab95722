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
#include <boost/url/parse.hpp>
#include <cerrno>
#include <cstring>
#include <optional>

#include "shared/core/log.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"

namespace edge::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using unix_socket = boost::asio::local::stream_protocol;

struct BeastHttpServer::State {
    State(boost::asio::io_context& io_context, Handler h, ServerOptions o)
        : io(io_context),
          tcp_acceptor(io_context),
          unix_acceptor(io_context),
          handler(std::move(h)),
          options(o) {}
    boost::asio::io_context& io;
    tcp::acceptor tcp_acceptor;
    unix_socket::acceptor unix_acceptor;
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

Request toRequest(const bhttp::request<bhttp::string_body>& req) {
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
    return out;
}

/// One connection, any stream protocol (TCP, Unix): reads requests one at a time, each within
/// request_timeout, until the peer or a response ends the connection.
template <class Protocol>
class Session : public std::enable_shared_from_this<Session<Protocol>> {
public:
    Session(typename Protocol::socket socket, std::shared_ptr<State> state)
        : stream_(std::move(socket)), state_(std::move(state)) {}

    void start() { readRequest(); }

private:
    void readRequest() {
        parser_.emplace();
        parser_->body_limit(state_->options.max_body_bytes);
        parser_->header_limit(16 * 1024);
        stream_.expires_after(state_->options.request_timeout);
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
        if (ec == bhttp::error::body_limit) {
            return send(errorResponse(413, "request body is larger than the limit"), false);
        }
        if (ec)
            return send(errorResponse(400, fmt::format("bad request: {}", ec.message())), false);
        if (state_->stopped) return close();
        const auto& req = parser_->get();
        Response response;
        try {
            response = state_->handler(toRequest(req));
        } catch (const std::exception& e) {
            log::error("http handler failed: {}", e.what());
            response = errorResponse(500, "internal error");
        } catch (...) {
            log::error("http handler failed with a non-standard exception");
            response = errorResponse(500, "internal error");
        }
        send(std::move(response), req.keep_alive());
    }

    void send(Response response, bool keep_alive) {
        auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
        res->result(static_cast<unsigned>(response.status));
        res->version(11);
        res->set(bhttp::field::server, "edge");
        res->set(bhttp::field::content_type, response.content_type);
        res->keep_alive(keep_alive);
        res->body() = std::move(response.body);
        res->prepare_payload();
        bhttp::async_write(
            stream_, *res,
            [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, std::size_t) {
                if (ec || !keep_alive) return self->close();
                self->readRequest();
            });
    }

    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(boost::asio::socket_base::shutdown_send, ignored);
    }

    beast::basic_stream<Protocol> stream_;
    beast::flat_buffer buffer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    std::shared_ptr<State> state_;
};

/// The accept loop of one listener; the acceptor lives in state, which the handler keeps alive.
template <class Acceptor>
void accept(const std::shared_ptr<State>& state, Acceptor& acceptor) {
    using Protocol = typename Acceptor::protocol_type;
    acceptor.async_accept(
        [state, &acceptor](beast::error_code ec, typename Protocol::socket socket) {
            if (state->stopped) return;
            if (ec) {
                // Out of descriptors and the like: back off instead of spinning on the error.
                log::warn("http accept failed: {}", ec.message());
                auto timer = std::make_shared<boost::asio::steady_timer>(
                    state->io, std::chrono::milliseconds(100));
                timer->async_wait([state, &acceptor, timer](beast::error_code) {
                    if (!state->stopped) accept(state, acceptor);
                });
                return;
            }
            state->accepted.fetch_add(1, std::memory_order_relaxed);
            std::make_shared<Session<Protocol>>(std::move(socket), state)->start();
            accept(state, acceptor);
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

Result<int> BeastHttpServer::listen(const std::string& host, int port) {
    if (state_->stopped) return fail(SharedErrc::kInvalidArgument, "listen: the server is stopped");
    beast::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    if (ec) return fail(SharedErrc::kInvalidArgument, fmt::format("bad listen address '{}'", host));
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    auto& acceptor = state_->tcp_acceptor;
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
    accept(state_, acceptor);
    return static_cast<int>(acceptor.local_endpoint().port());
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
