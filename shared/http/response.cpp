#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "shared/http/http.hpp"

namespace edge::http {

Response errorResponse(int status, std::string_view message) {
    const nlohmann::json body = {{"error", {{"code", status}, {"message", message}}}};
    return Response{status, "application/json", body.dump() + "\n"};
}

std::optional<std::string> findHeader(const Headers& headers, std::string_view name) {
    const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
    for (const auto& [key, value] : headers) {
        if (std::ranges::equal(key, name, {}, lower, lower)) return value;
    }
    return std::nullopt;
}

FileBody::~FileBody() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace edge::http
