#include "shared/http/beast/beast_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>

#include "shared/core/log.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"

namespace edge::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct BeastHttpServer::State {
    State(boost::asio::io_context& io_context, Handler h, ServerOptions o)
        : io(io_context), acceptor(io_context), handler(std::move(h)), options(o) {}
    boost::asio::io_context& io;
    tcp::acceptor acceptor;
    Handler handler;
    ServerOptions options;
    bool stopped = false;
};

namespace {

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

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, std::shared_ptr<BeastHttpServer::State> state)
        : stream_(std::move(socket)), state_(std::move(state)) {}

    void start() { readRequest(); }

private:
    void readRequest() {
        parser_.emplace();
        parser_->body_limit(state_->options.max_body_bytes);
        parser_->header_limit(16 * 1024);
        stream_.expires_after(state_->options.request_timeout);
        bhttp::async_read(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->onRead(ec);
                          });
    }

    void onRead(beast::error_code ec) {
        if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
            ec == boost::asio::error::operation_aborted) {
            return close();
        }
        if (ec == bhttp::error::body_limit) {
            return send(errorResponse(413, "request body is larger than the limit"), false);
        }
        if (ec) return send(errorResponse(400, fmt::format("bad request: {}", ec.message())), false);
        if (state_->stopped) return close();
        const auto& req = parser_->get();
        Response response;
        try {
            response = state_->handler(toRequest(req));
        } catch (const std::exception& e) {
            log::error("http handler failed: {}", e.what());
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
        bhttp::async_write(stream_, *res,
                           [self = shared_from_this(), res, keep_alive](beast::error_code ec,
                                                                         std::size_t) {
                               if (ec || !keep_alive) return self->close();
                               self->readRequest();
                           });
    }

    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    std::shared_ptr<BeastHttpServer::State> state_;
};

void accept(const std::shared_ptr<BeastHttpServer::State>& state) {
    state->acceptor.async_accept([state](beast::error_code ec, tcp::socket socket) {
        if (state->stopped) return;
        if (!ec) std::make_shared<Session>(std::move(socket), state)->start();
        accept(state);
    });
}

}  // namespace

BeastHttpServer::BeastHttpServer(AsioEventLoop& loop, Handler handler, ServerOptions options)
    : state_(std::make_shared<State>(loop.context(), std::move(handler), options)) {}

BeastHttpServer::~BeastHttpServer() { stop(); }

Result<int> BeastHttpServer::listen(const std::string& host, int port) {
    beast::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    if (ec) return fail(SharedErrc::kInvalidArgument, fmt::format("bad listen address '{}'", host));
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    auto& acceptor = state_->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
    if (ec) {
        return fail(SharedErrc::kHttp,
                    fmt::format("listen on {}:{}: {}", host, port, ec.message()));
    }
    accept(state_);
    return static_cast<int>(acceptor.local_endpoint().port());
}

void BeastHttpServer::stop() {
    if (state_->stopped) return;
    state_->stopped = true;
    beast::error_code ignored;
    state_->acceptor.close(ignored);
}

}  // namespace edge::http
