// tls::Stream on its own: both ends over loopback on one io_context, with the contexts the
// adapters use (mutual TLS), odd write and read sizes, close_notify and a cut connection.
#include "shared/http/beast/tls_stream.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "shared/http/beast/tls_context.hpp"
#include "tests/support/test_pki.hpp"

namespace edge::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Tls = tls::Stream<boost::beast::tcp_stream>;

std::string pattern(std::size_t size) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + i / 4093) & 0xff);
    return s;
}

/// A connected, handshaken pair of streams.
struct Pair {
    asio::io_context io;
    test::TestPki pki;
    std::shared_ptr<tls::Context> server_ctx;
    std::shared_ptr<tls::Context> client_ctx;
    std::optional<Tls> server;
    std::optional<Tls> client;

    Pair() {
        auto s = tls::serverContext(pki.server());
        auto c = tls::clientContext(pki.client());
        REQUIRE(s);
        REQUIRE(c);
        server_ctx = *s;
        client_ctx = *c;
        tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        tcp::socket accepted(io);
        client.emplace(io, *client_ctx);
        REQUIRE(tls::expectHost(client->native_handle(), "127.0.0.1"));
        client->next_layer().socket().connect(acceptor.local_endpoint());
        acceptor.accept(accepted);
        server.emplace(boost::beast::tcp_stream(std::move(accepted)), *server_ctx);
        boost::system::error_code server_ec = asio::error::would_block;
        boost::system::error_code client_ec = asio::error::would_block;
        server->async_handshake(asio::ssl::stream_base::server,
                                [&](boost::system::error_code ec) { server_ec = ec; });
        client->async_handshake(asio::ssl::stream_base::client,
                                [&](boost::system::error_code ec) { client_ec = ec; });
        io.run();
        io.restart();
        INFO(server_ec.message() << " / " << client_ec.message());
        REQUIRE_FALSE(server_ec);
        REQUIRE_FALSE(client_ec);
        CHECK(tls::peerCommonName(server->native_handle()) == "edge-1");
    }
};

TEST_CASE("tls::Stream: megabytes in odd pieces arrive whole and in order, then close_notify is eof",
          "[http][tls]") {
    Pair pair;
    // The handshake read with the smallest receive buffer.
    CHECK(pair.server->receiveBufferSize() == Tls::kReadChunk);
    CHECK(pair.client->receiveBufferSize() == Tls::kReadChunk);
    const std::string sent = pattern((5u << 20) + 12345);
    // Writer: pieces of 1, 70000 and 1 MiB + 3 bytes, each async_write_some taking what it can.
    std::size_t offset = 0;
    std::size_t turn = 0;
    std::vector<std::size_t> write_sizes;
    std::function<void()> write_next = [&] {
        if (offset == sent.size()) {
            pair.client->async_shutdown([](boost::system::error_code) {});
            return;
        }
        static constexpr std::size_t kPieces[] = {1, 70000, (1u << 20) + 3};
        const std::size_t want = std::min(kPieces[turn++ % 3], sent.size() - offset);
        pair.client->async_write_some(asio::buffer(sent.data() + offset, want),
                                      [&](boost::system::error_code ec, std::size_t n) {
                                          REQUIRE_FALSE(ec);
                                          REQUIRE(n > 0);
                                          write_sizes.push_back(n);
                                          offset += n;
                                          write_next();
                                      });
    };
    // Reader: buffers of 3 MiB, then 7 bytes, alternating. The first read waits with nothing
    // received yet, so it grows the receive buffer.
    std::string received;
    std::vector<char> buffer(3u << 20);
    boost::system::error_code end;
    std::size_t reads = 0;
    std::function<void()> read_next = [&] {
        const std::size_t room = reads++ % 2 == 0 ? buffer.size() : 7;
        pair.server->async_read_some(asio::buffer(buffer.data(), room),
                                     [&](boost::system::error_code ec, std::size_t n) {
                                         received.append(buffer.data(), n);
                                         if (ec) {
                                             end = ec;
                                             // Answer the close_notify: the writer's shutdown
                                             // waits for it.
                                             pair.server->async_shutdown([](boost::system::error_code) {});
                                             return;
                                         }
                                         REQUIRE(n > 0);
                                         read_next();
                                     });
    };
    write_next();
    read_next();
    pair.io.run();
    CHECK(received.size() == sent.size());
    CHECK(received == sent);
    CHECK(end == asio::error::eof);  // the writer's close_notify
    // No write took more than the stream's batch, and a large one took a whole batch.
    CHECK(*std::max_element(write_sizes.begin(), write_sizes.end()) == Tls::kMaxWrite);
    // Reads into 3 MiB grew the reader's receive buffer to its largest size, no further; the
    // writer, which read only handshake and close_notify records, kept the smallest.
    CHECK(pair.server->receiveBufferSize() == Tls::kMaxReadChunk);
    CHECK(pair.client->receiveBufferSize() == Tls::kReadChunk);
}

TEST_CASE("tls::Stream: a connection cut without close_notify is stream_truncated, garbage is a "
          "TLS error", "[http][tls]") {
    SECTION("cut") {
        Pair pair;
        pair.client->next_layer().socket().shutdown(tcp::socket::shutdown_both);
        boost::system::error_code got;
        char byte = 0;
        pair.server->async_read_some(asio::buffer(&byte, 1),
                                     [&](boost::system::error_code ec, std::size_t) { got = ec; });
        pair.io.run();
        CHECK(got == asio::ssl::error::stream_truncated);
    }
    SECTION("garbage after good records: the good bytes first, then the TLS error") {
        Pair pair;
        bool written = false;
        pair.client->async_write_some(asio::buffer(std::string_view("hello")),
                                      [&](boost::system::error_code ec, std::size_t n) {
                                          written = !ec && n == 5;
                                      });
        pair.io.run();
        pair.io.restart();
        REQUIRE(written);
        const std::string junk(64, 'x');  // not a TLS record
        asio::write(pair.client->next_layer().socket(), asio::buffer(junk));
        std::vector<char> buffer(64);
        boost::system::error_code first, second;
        std::size_t got = 0;
        pair.server->async_read_some(asio::buffer(buffer), [&](boost::system::error_code ec, std::size_t n) {
            first = ec;
            got = n;
            pair.server->async_read_some(asio::buffer(buffer),
                                         [&](boost::system::error_code ec2, std::size_t) { second = ec2; });
        });
        pair.io.run();
        CHECK_FALSE(first);
        CHECK(std::string(buffer.data(), got) == "hello");
        CHECK(second.category() == asio::error::get_ssl_category());
        CHECK_FALSE(second.message().empty());
    }
}

TEST_CASE("tls::Stream: a handshake with a client the server's CA did not sign fails on both ends",
          "[http][tls]") {
    asio::io_context io;
    test::TestPki pki;
    auto s = tls::serverContext(pki.server());
    auto c = tls::clientContext(pki.client("rogue-client"));
    REQUIRE(s);
    REQUIRE(c);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket accepted(io);
    Tls client(io, **c);
    client.next_layer().socket().connect(acceptor.local_endpoint());
    acceptor.accept(accepted);
    Tls server(boost::beast::tcp_stream(std::move(accepted)), **s);
    boost::system::error_code server_ec, client_ec;
    server.async_handshake(asio::ssl::stream_base::server,
                           [&](boost::system::error_code ec) { server_ec = ec; });
    client.async_handshake(asio::ssl::stream_base::client, [&](boost::system::error_code ec) {
        client_ec = ec;
        if (ec) return;
        // TLS 1.3: the client learns of the refusal with its first read (the server's alert).
        static char byte = 0;
        client.async_read_some(asio::buffer(&byte, 1),
                               [&](boost::system::error_code ec2, std::size_t) { client_ec = ec2; });
    });
    io.run();
    CHECK(server_ec.category() == asio::error::get_ssl_category());
    CHECK(client_ec);
}

}  // namespace
}  // namespace edge::http
