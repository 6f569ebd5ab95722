#include "shared/core/text.hpp"

#include <nlohmann/json.hpp>

namespace edge {

std::string untrustedText(std::string_view text, std::size_t max) {
    const bool cut = text.size() > max;
    if (cut) text = text.substr(0, max);
    std::string out;
    out.reserve(text.size() + (cut ? 3 : 0));
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
            out.push_back(c);
        } else {
            constexpr std::string_view kHex = "0123456789abcdef";
            out += "\\x";
            out.push_back(kHex[byte >> 4]);
            out.push_back(kHex[byte & 0xf]);
        }
    }
    if (cut) out += "...";
    return out;
}

std::string jsonText(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace edge
