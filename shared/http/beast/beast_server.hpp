#pragma once
// HttpServer on Boost.Beast, sharing the program's io_context (handlers run on the loop thread).
#include <memory>

#include "shared/http/http.hpp"

namespace edge {
class AsioEventLoop;
}

namespace edge::http {

struct ServerOptions {
    std::size_t max_body_bytes = 1u << 20;
    std::chrono::milliseconds request_timeout{30000};
};

class BeastHttpServer final : public HttpServer {
public:
    BeastHttpServer(AsioEventLoop& loop, Handler handler, ServerOptions options = {});
    ~BeastHttpServer() override;
    [[nodiscard]] Result<int> listen(const std::string& host, int port) override;
    void stop() override;

    struct State;  // defined in the .cpp; public only so its helpers can name it

private:
    std::shared_ptr<State> state_;
};

}  // namespace edge::http
