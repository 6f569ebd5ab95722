#pragma once
// TLS contexts and certificate helpers shared by the Beast server and client. Adapter-internal:
// only the .cpp files of shared/http/beast include it.
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "shared/http/http.hpp"

namespace edge::http::tls {

using Context = boost::asio::ssl::context;

/// TLS 1.2 or later; cert and key loaded; every client must present a certificate that chains
/// to client_ca. Errors name the file that could not be used (kInvalidArgument).
[[nodiscard]] Result<std::shared_ptr<Context>> serverContext(const TlsServerOptions& options);

/// TLS 1.2 or later; the server certificate must chain to ca; cert and key, when set, are
/// presented to the server. Errors name the file (kInvalidArgument).
[[nodiscard]] Result<std::shared_ptr<Context>> clientContext(const TlsClientOptions& options);

/// Before a client handshake on ssl: the server certificate must name host (an IP address or a
/// DNS name, checked against subjectAltName); DNS names are also sent as SNI.
[[nodiscard]] Status expectHost(SSL* ssl, const std::string& host);

/// Why the peer's certificate failed verification ("hostname mismatch", "unable to get local
/// issuer certificate"); "" when it did not.
[[nodiscard]] std::string verifyFailure(SSL* ssl);

/// Common name of the peer certificate the handshake verified; "" when there is none.
[[nodiscard]] std::string peerCommonName(SSL* ssl);

}  // namespace edge::http::tls
