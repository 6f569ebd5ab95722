// http::request on Boost.Beast: a private io_context per call, bounded by a deadline.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>

#include "shared/http/http.hpp"

namespace edge::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

Result<Response> request(const std::string& method, const std::string& url,
                         const std::string& body, const ClientOptions& options) {
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed || parsed->scheme() != "http" || !parsed->has_authority()) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("'{}' is not an http:// URL", url));
    }
    const std::string host(parsed->host());
    const std::string port = parsed->has_port() ? std::string(parsed->port()) : "80";
    std::string target(parsed->encoded_path());
    if (target.empty()) target = "/";
    if (parsed->has_query()) target += "?" + std::string(parsed->encoded_query());

    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, host);
    req.set(bhttp::field::user_agent, "edge-client");
    if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(options.max_response_bytes);
    beast::error_code result_ec;
    std::string stage = "resolve";

    tcp::resolver resolver(io);
    stream.expires_after(options.timeout);
    resolver.async_resolve(host, port, [&](beast::error_code ec, tcp::resolver::results_type r) {
        if (ec) return void(result_ec = ec);
        stage = "connect";
        stream.async_connect(r, [&](beast::error_code ec2, const tcp::endpoint&) {
            if (ec2) return void(result_ec = ec2);
            stage = "send";
            bhttp::async_write(stream, req, [&](beast::error_code ec3, std::size_t) {
                if (ec3) return void(result_ec = ec3);
                stage = "receive";
                bhttp::async_read(stream, buffer, parser, [&](beast::error_code ec4, std::size_t) {
                    result_ec = ec4;
                });
            });
        });
    });
    io.run_for(options.timeout + std::chrono::milliseconds(500));
    if (!io.stopped()) {
        return fail(SharedErrc::kTimeout, fmt::format("{} {}: timed out", method, url));
    }
    if (result_ec) {
        if (result_ec == beast::error::timeout) {
            return fail(SharedErrc::kTimeout, fmt::format("{} {}: timed out during {}", method, url, stage));
        }
        return fail(SharedErrc::kHttp,
                    fmt::format("{} {}: {} failed: {}", method, url, stage, result_ec.message()));
    }
    const auto& res = parser.get();
    Response out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[bhttp::field::content_type]);
    out.body = res.body();
    return out;
}

}  // namespace edge::http
