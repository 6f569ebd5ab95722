#include <nlohmann/json.hpp>

#include "shared/http/http.hpp"

namespace edge::http {

Response errorResponse(int status, std::string_view message) {
    const nlohmann::json body = {{"error", {{"code", status}, {"message", message}}}};
    return Response{status, "application/json", body.dump() + "\n"};
}

}  // namespace edge::http
