#include "shared/http/beast/tls_context.hpp"

#include <fmt/format.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>

namespace edge::http::tls {

namespace ssl = boost::asio::ssl;
using boost::system::error_code;

namespace {

std::unexpected<Error> fileError(std::string_view what, const std::filesystem::path& path,
                                 const error_code& ec) {
    return fail(SharedErrc::kInvalidArgument,
                fmt::format("{} '{}': {}", what, path.string(), ec.message()));
}

/// TLS 1.2+ only, no compression, no renegotiation.
Status harden(Context& ctx) {
    SSL_CTX* native = ctx.native_handle();
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
        return fail(SharedErrc::kHttp, "cannot require TLS 1.2");
    }
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    return {};
}

Status loadIdentity(Context& ctx, const std::filesystem::path& cert,
                    const std::filesystem::path& key) {
    error_code ec;
    ctx.use_certificate_chain_file(cert.string(), ec);
    if (ec) return fileError("load certificate", cert, ec);
    ctx.use_private_key_file(key.string(), Context::pem, ec);
    if (ec) return fileError("load private key", key, ec);
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("private key '{}' does not match certificate '{}'", key.string(),
                                cert.string()));
    }
    return {};
}

}  // namespace

Result<std::shared_ptr<Context>> serverContext(const TlsServerOptions& options) {
    auto ctx = std::make_shared<Context>(Context::tls_server);
    if (auto ok = harden(*ctx); !ok) return fail(std::move(ok.error()));
    if (auto ok = loadIdentity(*ctx, options.cert, options.key); !ok) {
        return fail(std::move(ok.error()));
    }
    error_code ec;
    ctx->load_verify_file(options.client_ca.string(), ec);
    if (ec) return fileError("load client CA", options.client_ca, ec);
    // Tell clients which CAs are accepted (some pick their certificate by it).
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca.c_str())) {
        SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    }
    // Without a session id context, a client resuming a session (curl does) fails the
    // handshake; a resumed session keeps its verified peer certificate.
    static constexpr unsigned char kSessionContext[] = "edge-http";
    SSL_CTX_set_session_id_context(ctx->native_handle(), kSessionContext,
                                   sizeof(kSessionContext) - 1);
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    if (ec) return fail(SharedErrc::kHttp, fmt::format("set verify mode: {}", ec.message()));
    return ctx;
}

Result<std::shared_ptr<Context>> clientContext(const TlsClientOptions& options) {
    auto ctx = std::make_shared<Context>(Context::tls_client);
    if (auto ok = harden(*ctx); !ok) return fail(std::move(ok.error()));
    if (options.ca.empty()) {
        return fail(SharedErrc::kInvalidArgument, "TLS needs a CA file to verify the server");
    }
    error_code ec;
    ctx->load_verify_file(options.ca.string(), ec);
    if (ec) return fileError("load CA", options.ca, ec);
    if (!options.cert.empty() || !options.key.empty()) {
        if (auto ok = loadIdentity(*ctx, options.cert, options.key); !ok) {
            return fail(std::move(ok.error()));
        }
    }
    ctx->set_verify_mode(ssl::verify_peer, ec);
    if (ec) return fail(SharedErrc::kHttp, fmt::format("set verify mode: {}", ec.message()));
    return ctx;
}

Status expectHost(SSL* ssl, const std::string& host) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    error_code ec;
    boost::asio::ip::make_address(host, ec);
    if (!ec) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
            return fail(SharedErrc::kInvalidArgument, fmt::format("bad IP address '{}'", host));
        }
        return {};
    }
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) != 1 ||
        SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("bad host name '{}'", host));
    }
    return {};
}

std::string verifyFailure(SSL* ssl) {
    const long result = SSL_get_verify_result(ssl);
    return result == X509_V_OK ? std::string() : X509_verify_cert_error_string(result);
}

std::string peerCommonName(SSL* ssl) {
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return {};
    X509_NAME* subject = X509_get_subject_name(cert);
    const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0) return {};
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, data);
    if (length < 0) return {};
    std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
    OPENSSL_free(utf8);
    if (cn.find('\0') != std::string::npos) return {};  // "edge-1\0…" must not pass as edge-1
    return cn;
}

}  // namespace edge::http::tls
