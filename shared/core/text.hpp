#pragma once
// Text from outside the process, made safe for messages, logs and persisted JSON.
#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace edge {

/// Bytes from outside (a server's header or error page) fit for an error message or a log line:
/// printable ASCII is kept, every other byte is written \xNN (so no newline, escape sequence or
/// broken UTF-8 gets through), and input past max bytes is cut with "...".
[[nodiscard]] std::string untrustedText(std::string_view text, std::size_t max = 256);

/// j as compact JSON that never throws: bytes of a string that are not valid UTF-8 (a message
/// that carries bytes from outside) become U+FFFD instead of an exception.
[[nodiscard]] std::string jsonText(const nlohmann::json& j);

}  // namespace edge
